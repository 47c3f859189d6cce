// Package sshtest starts a real OpenSSH server on a loopback port for
// tests of remote resources, with generated host and user keys. It skips
// the test when sshd is not installed, unless SOMAFLOW_REQUIRE names ssh
// (then the test fails).
package sshtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running sshd.
type Server struct {
	Port int
	User string
	// Identity is the user's private key file; KnownHosts a file for ssh's
	// host keys.
	Identity   string
	KnownHosts string
	// LockedIdentity is a second user key, protected by Passphrase.
	LockedIdentity string
	Passphrase     string
	// Options are the ssh options a client needs for this server.
	Options []string
}

// Required tells whether SOMAFLOW_REQUIRE names ssh.
func Required() bool {
	for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
		if strings.TrimSpace(s) == "ssh" {
			return true
		}
	}
	return false
}

func skip(t testing.TB, format string, a ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, a...)
	if Required() {
		t.Fatalf("SOMAFLOW_REQUIRE=ssh but %s", msg)
	}
	t.Skipf("%s (apt-get install openssh-server openssh-client)", msg)
}

// Start starts sshd in the foreground on a free loopback port; it is
// stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		skip(t, "no sshd: %v", err)
	}
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(t, "no %s: %v", tool, err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	const passphrase = "correct horse 'battery' staple"
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", filepath.Join(dir, "locked")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err != nil {
		t.Fatal(err)
	}
	lockedPub, err := os.ReadFile(filepath.Join(dir, "locked.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub = append(pub, lockedPub...)
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755) // privilege separation dir
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf := filepath.Join(dir, "sshd.log")
	cmd := exec.Command(sshd, "-D", "-f", "/dev/null", "-h", filepath.Join(dir, "host"), "-p", strconv.Itoa(port),
		"-E", logf,
		"-o", "ListenAddress=127.0.0.1", "-o", "PidFile="+filepath.Join(dir, "sshd.pid"),
		"-o", "AuthorizedKeysFile="+auth, "-o", "StrictModes=no",
		"-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no", "-o", "MaxStartups=100", "-o", "MaxSessions=100")
	if err := cmd.Start(); err != nil {
		skip(t, "sshd does not start: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf)
			skip(t, "sshd does not listen on port %d: %s", port, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := &Server{Port: port, User: u.Username, Identity: filepath.Join(dir, "user"), KnownHosts: filepath.Join(dir, "known_hosts"),
		LockedIdentity: filepath.Join(dir, "locked"), Passphrase: passphrase}
	s.Options = []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=" + s.KnownHosts, "-o", "LogLevel=ERROR", "-F", "/dev/null"}
	out, err := exec.Command("ssh", append(append([]string{"-i", s.Identity, "-p", strconv.Itoa(port), "-o", "BatchMode=yes"}, s.Options...), "-l", s.User, "127.0.0.1", "true")...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(logf)
		skip(t, "ssh to the test sshd fails: %v: %s; sshd log: %s", err, out, log)
	}
	return s
}
