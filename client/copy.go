package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/somaflow/somaflow/store"
)

// DefaultBufferSize is the size of the pieces files are copied in
// (soma-workflow's transfer_files default, 512**2).
const DefaultBufferSize = 512 * 512

// fileEntry is one file or directory of what a transfer moves, relative to
// its root ("" for the root itself).
type fileEntry struct {
	Rel  string      `json:"rel"`
	Dir  bool        `json:"dir,omitempty"`
	Size int64       `json:"size"`
	Mode fs.FileMode `json:"mode"`
}

// errSource marks an error of the side read from (a missing client file).
var errSource = errors.New("source")

// scanTree lists a file or a directory tree (directories before their
// contents, in name order); symbolic links are followed, other special
// files refused.
func scanTree(root string) ([]fileEntry, int64, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errSource, err)
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("%w: %s is not a regular file or a directory", errSource, root)
		}
		return []fileEntry{{Size: fi.Size(), Mode: fi.Mode().Perm()}}, fi.Size(), nil
	}
	var out []fileEntry
	var total int64
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		if depth > 256 {
			return fmt.Errorf("%w: %s: directories nested too deep (a link loop?)", errSource, filepath.Join(root, rel))
		}
		ents, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			return fmt.Errorf("%w: %w", errSource, err)
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, n := range names {
			r := filepath.Join(rel, n)
			fi, err := os.Stat(filepath.Join(root, r))
			if err != nil {
				return fmt.Errorf("%w: %w", errSource, err)
			}
			switch {
			case fi.IsDir():
				out = append(out, fileEntry{Rel: r, Dir: true, Mode: fi.Mode().Perm()})
				if err := walk(r, depth+1); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				out = append(out, fileEntry{Rel: r, Size: fi.Size(), Mode: fi.Mode().Perm()})
				total += fi.Size()
			default:
				return fmt.Errorf("%w: %s is not a regular file or a directory", errSource, filepath.Join(root, r))
			}
		}
		return nil
	}
	out = append(out, fileEntry{Dir: true, Mode: fi.Mode().Perm()})
	if err := walk("", 0); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// progressOf starts the progress of a transfer of entries.
func progressOf(ents []fileEntry, total int64) store.TransferProgress {
	p := store.TransferProgress{Total: total}
	if len(ents) > 1 || (len(ents) == 1 && ents[0].Dir) {
		for _, e := range ents {
			if e.Rel != "" {
				p.Files = append(p.Files, store.FileProgress{Path: e.Rel, Size: e.Size, IsDir: e.Dir})
			}
		}
	}
	return p
}

// progressMeter reports a copy's progress: to a callback at every piece,
// and to the store at most every progressEvery.
type progressMeter struct {
	p        store.TransferProgress
	index    map[string]int
	report   func(store.TransferProgress, bool)
	lastSave time.Time
}

const progressEvery = 200 * time.Millisecond

func newMeter(p store.TransferProgress, report func(store.TransferProgress, bool)) *progressMeter {
	m := &progressMeter{p: p, index: map[string]int{}, report: report, lastSave: time.Now()}
	for i, f := range p.Files {
		m.index[f.Path] = i
	}
	return m
}

func (m *progressMeter) add(rel string, n int64) {
	m.p.Done += n
	if i, ok := m.index[rel]; ok {
		m.p.Files[i].Done += n
	}
	save := time.Since(m.lastSave) >= progressEvery
	if save {
		m.lastSave = time.Now()
	}
	m.report(m.p, save)
}

// writeTree makes dst from a stream of entries and their contents, read
// from open (each regular file's content, Size bytes): it is written under
// a temporary name beside dst and renamed over it only once complete, so
// that a cut copy never leaves a half-written dst. private makes files
// 0600 and directories 0700 (the state dir's rule; an executable keeps its
// owner's x bit); otherwise the umask decides.
func writeTree(ctx context.Context, dst string, ents []fileEntry, private bool, buf int, open func(e fileEntry) (io.ReadCloser, error), key func(string) string, m *progressMeter) (err error) {
	parent := filepath.Dir(dst)
	dirMode := fs.FileMode(0o777)
	if private {
		dirMode = 0o700
	}
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".somaflow-part-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if private {
		os.Chmod(tmp, 0o700)
	}
	stage := filepath.Join(tmp, "data")
	b := make([]byte, max(buf, 4096))
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := stage
		if e.Rel != "" {
			if !filepath.IsLocal(e.Rel) {
				return fmt.Errorf("refusing entry %q outside the transfer", e.Rel)
			}
			p = filepath.Join(stage, e.Rel)
		}
		if e.Dir {
			if err := os.Mkdir(p, dirMode); err != nil {
				return err
			}
			continue
		}
		mode := fs.FileMode(0o666)
		if e.Mode&0o111 != 0 {
			mode = 0o777
		}
		if private {
			mode = 0o600
			if e.Mode&0o100 != 0 {
				mode = 0o700
			}
		}
		if err := copyOne(ctx, p, e, mode, b, open, key(e.Rel), m); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.Rename(stage, dst); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}

func copyOne(ctx context.Context, p string, e fileEntry, mode fs.FileMode, b []byte, open func(e fileEntry) (io.ReadCloser, error), key string, m *progressMeter) error {
	r, err := open(e)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	var n int64
	for n < e.Size {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		want := int64(len(b))
		if e.Size-n < want {
			want = e.Size - n
		}
		k, rerr := io.ReadFull(r, b[:want])
		if k > 0 {
			if _, err := f.Write(b[:k]); err != nil {
				f.Close()
				return err
			}
			n += int64(k)
			m.add(key, int64(k))
		}
		if rerr != nil {
			f.Close()
			return fmt.Errorf("%s: cut after %d of %d bytes: %w", e.Rel, n, e.Size, rerr)
		}
	}
	return f.Close()
}

// copyPair is one source and destination of a transfer (several when the
// transfer moves several client files together).
type copyPair struct{ src, dst string }

// copyLocal copies files or directories on this machine, each src to its
// dst, with one progress for all.
func copyLocal(ctx context.Context, pairs []copyPair, private bool, buf int, start func(store.TransferProgress) error, report func(store.TransferProgress, bool)) error {
	type scanned struct {
		ents  []fileEntry
		total int64
	}
	var all []scanned
	var p store.TransferProgress
	for _, pr := range pairs {
		ents, total, err := scanTree(pr.src)
		if err != nil {
			return err
		}
		all = append(all, scanned{ents, total})
		sub := progressOf(ents, total)
		p.Total += total
		if len(pairs) == 1 {
			p.Files = sub.Files
		} else {
			p.Files = append(p.Files, store.FileProgress{Path: filepath.Base(pr.dst), Size: total, IsDir: ents[0].Dir})
		}
	}
	if err := start(p); err != nil {
		return err
	}
	m := newMeter(p, report)
	for i, pr := range pairs {
		key := func(rel string) string { return rel }
		if len(pairs) > 1 {
			base := filepath.Base(pr.dst)
			key = func(string) string { return base }
		}
		open := func(e fileEntry) (io.ReadCloser, error) {
			f, err := os.Open(filepath.Join(pr.src, e.Rel))
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errSource, err)
			}
			return f, nil
		}
		if err := writeTree(ctx, pr.dst, all[i].ents, private, buf, open, key, m); err != nil {
			return err
		}
	}
	return nil
}
