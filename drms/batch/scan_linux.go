package batch

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"
)

// direntBufs are getdents buffers (a spool dir of 1,000 attempts, four or
// five files each, fits in one).
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// readNames is the set of the names in dir of exec-job's status files,
// and of its started files with started (nil when dir cannot be read). It
// reads the directory with getdents into a reused buffer and makes a
// string of the names it keeps only: a spool dir holds four or five
// files per attempt, most of which it skips.
func readNames(dir string, started bool) map[string]struct{} {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	m := map[string]struct{}{}
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil
		}
		if n <= 0 {
			return m
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name (NUL-terminated).
		for off := 0; off+19 <= n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen < 19 || off+reclen > n {
				return nil
			}
			name := buf[off+19 : off+reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if keep(name, started) {
				m[string(name)] = struct{}{}
			}
			off += reclen
		}
	}
}
