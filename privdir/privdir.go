// Package privdir makes and checks the directories somaflow keeps private
// to the user: the state dir and the spool subdirs. Such a directory must
// be a real directory (not a symlink), owned by the user who runs somaflow
// and closed to group and others; one that is not is refused with an error
// naming its owner, whoever runs somaflow, root included (a root engine
// must not trust a database or batch script another user could replace).
package privdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// Ensure creates dir (and its parents) with mode 0700 if it does not exist,
// and checks it with Check. An existing directory with group or other
// permissions but the right owner is made 0700.
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	err := Check(dir)
	var pe *PermError
	if errors.As(err, &pe) && pe.Owned && pe.Mode.IsDir() {
		if cerr := os.Chmod(dir, 0o700); cerr != nil {
			return fmt.Errorf("make %s private: %w", dir, cerr)
		}
		return nil
	}
	return err
}

// PermError is a directory or file that is not private to the user.
type PermError struct {
	Path  string
	Mode  fs.FileMode
	Owner string // "name (uid N)"
	Owned bool   // owned by the user (only its mode is wrong)
	Why   string
}

func (e *PermError) Error() string {
	return fmt.Sprintf("%s %s (owner %s, mode %v): refusing to use it", e.Path, e.Why, e.Owner, e.Mode)
}

// Check verifies that path is a directory (not a symlink) owned by the
// effective user and closed to group and others.
func Check(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	return checkInfo(path, fi, true, 0o077)
}

// CheckWriters verifies that path is a directory (not a symlink) owned by
// the effective user that group and others cannot write to: what a job's
// files need to be safe from being swapped, where privacy is not asked.
func CheckWriters(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	return checkInfo(path, fi, true, 0o022)
}

// CheckFile verifies that an open file is a regular file owned by the
// effective user and not writable by group or others.
func CheckFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return checkInfo(f.Name(), fi, false, 0o022)
}

func checkInfo(path string, fi fs.FileInfo, dir bool, mask fs.FileMode) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // no ownership to check on this system
	}
	owned := int(st.Uid) == os.Geteuid()
	e := &PermError{Path: path, Mode: fi.Mode(), Owner: ownerName(st.Uid), Owned: owned}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Why = "is a symbolic link"
	case dir && !fi.IsDir():
		e.Why = "is not a directory"
	case !dir && !fi.Mode().IsRegular():
		e.Why = "is not a regular file"
	case !owned:
		e.Why = fmt.Sprintf("is not owned by you (uid %d)", os.Geteuid())
	case fi.Mode().Perm()&mask&0o055 != 0:
		e.Why = "is open to group or others"
	case fi.Mode().Perm()&mask != 0:
		e.Why = "is writable by group or others"
	default:
		return nil
	}
	return e
}

func ownerName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("%s (uid %s)", u.Username, id)
	}
	return "uid " + id
}

// OpenFile opens a file inside a private directory without following a
// symlink at its name (O_NOFOLLOW: a link planted there is an error, not a
// way to make somaflow write elsewhere), and checks that the file opened is
// a regular file owned by the user that others cannot write.
func OpenFile(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &PermError{Path: path, Mode: fs.ModeSymlink, Owner: "?", Why: "is a symbolic link"}
	}
	if err != nil {
		return nil, err
	}
	if err := CheckFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lowSpace is the free space under which a filesystem counts as full.
const lowSpace = 1 << 20

// Full returns an error saying so when the filesystem of dir is full (less
// than 1 MiB left to an unprivileged user), nil otherwise or when it cannot
// tell: the engine says why it cannot record progress, and the supervisor
// does not start held jobs then.
func Full(dir string) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return nil
	}
	if free := fs.Bavail * uint64(fs.Bsize); free < lowSpace {
		return fmt.Errorf("the filesystem of %s is full (%d KiB free)", dir, free/1024)
	}
	return nil
}
