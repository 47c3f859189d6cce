// Package dashboard is somaflow's read-only web view of a state dir: the
// workflows, one workflow (job table paged and failed first, the
// dependency graph as SVG with groups collapsed when large, a timeline of
// attempts) and one job (command, environment, working directory, the
// tails of its logs, each attempt), live without reloading (the page polls
// a small JSON document of server-rendered fragments). It also writes the
// same views of one workflow as a self-contained HTML report.
//
// It reads through the client package only and changes nothing: every
// route answers GET and HEAD, nothing else. Serve listens on 127.0.0.1
// only, and asks for the token of the URL it prints (then a cookie), so
// that other users of a shared login node cannot read the pages. Every
// value shown goes through html/template; assets are embedded (no CDN, no
// request leaves the page).
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

//go:embed templates/*.html assets/*
var files embed.FS

// Options configure a Server.
type Options struct {
	// Token, when set, must be given once as ?token= (a cookie then keeps
	// it); requests without it are refused. Serve makes one.
	Token string
	// Logger receives request errors (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests fix it.
	Now func() time.Time
}

// Server answers the dashboard's pages from a client opened on a state
// dir. It keeps a few recent readings of workflows (bounded by their
// number of jobs) and the layouts of their graphs.
type Server struct {
	c     *client.Client
	opts  Options
	tmpl  *template.Template
	css   string
	js    string
	mux   *http.ServeMux
	next  func() <-chan struct{}
	stopW func()

	// mu guards the readings (held while one is read: reads are one at a
	// time), defMu the definitions.
	mu    sync.Mutex
	snaps map[int64]*snapshot
	sums  map[int64]*summary
	defMu sync.Mutex
	defs  map[int64]*defEntry
}

// defEntry is a workflow definition with its graph layout.
type defEntry struct {
	submitted string
	ready     chan struct{} // closed once def and layout, or err, are set
	def       *model.Workflow
	layout    *layout
	err       error
	used      time.Time // guarded by Server.defMu
}

// Cache bounds: the snapshots kept hold at most maxCachedJobs jobs in all,
// and at most maxCachedDefs definitions are kept.
const (
	maxCachedJobs = 250_000
	maxCachedDefs = 4
)

// cookieName, followed by _PORT, is the cookie that keeps the token.
const cookieName = "somaflow_dashboard"

// New makes a Server reading through c (open it with NoEngine). Close
// stops its watch of the state dir.
func New(c *client.Client, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{c: c, opts: opts, snaps: map[int64]*snapshot{}, sums: map[int64]*summary{}, defs: map[int64]*defEntry{}}
	t, err := template.New("").Funcs(template.FuncMap{
		"pct": func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	s.tmpl = t
	css, err := files.ReadFile("assets/style.css")
	if err != nil {
		return nil, err
	}
	js, err := files.ReadFile("assets/live.js")
	if err != nil {
		return nil, err
	}
	s.css, s.js = string(css), string(js)
	s.next, s.stopW = c.Watch()
	s.mux = http.NewServeMux()
	assets, _ := fs.Sub(files, "assets")
	s.mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	s.mux.HandleFunc("GET /{$}", s.listPage)
	s.mux.HandleFunc("GET /api/workflows", s.listAPI)
	s.mux.HandleFunc("GET /w/{id}", s.workflowPage)
	s.mux.HandleFunc("GET /api/w/{id}", s.workflowAPI)
	s.mux.HandleFunc("GET /w/{id}/j/{job}", s.jobPage)
	s.mux.HandleFunc("GET /api/w/{id}/j/{job}", s.jobAPI)
	return s, nil
}

// Close stops the server's watch of the state dir (not the client).
func (s *Server) Close() { s.stopW() }

// ServeHTTP answers GET and HEAD only, from loopback host names only
// (no DNS rebinding), with the token when one is set.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	if r.Host != "" && !loopbackName(strings.Trim(host, "[]")) {
		http.Error(w, "this dashboard answers on 127.0.0.1 only", http.StatusForbidden)
		return
	}
	if s.opts.Token != "" {
		// Cookies are shared by every port of a host: the name says which
		// dashboard the cookie is for (two may run at once).
		name := cookieName + "_" + port
		if q := r.URL.Query().Get("token"); q != "" && s.tokenOK(q) {
			http.SetCookie(w, &http.Cookie{Name: name, Value: s.opts.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		} else if c, err := r.Cookie(name); err != nil || !s.tokenOK(c.Value) {
			http.Error(w, "open the URL `somaflow dashboard` printed (it holds the token)", http.StatusUnauthorized)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func loopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.opts.Token)) == 1
}

// NewToken makes a random token for Options.Token.
func NewToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Serve serves the dashboard on 127.0.0.1:port (0: a free port) until ctx
// ends, calling ready with the URL to open (it holds the token) once it
// listens.
func Serve(ctx context.Context, c *client.Client, port int, logger *slog.Logger, ready func(url string)) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("%w: port %d is not a TCP port", client.ErrInvalid, port)
	}
	token := NewToken()
	srv, err := New(c, Options{Token: token, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%w: listen on 127.0.0.1:%d: %v", client.ErrUnavailable, port, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(srv.opts.Logger.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	ready(fmt.Sprintf("http://%s/?token=%s", ln.Addr().String(), token))
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// snapshot returns a fresh enough reading of workflow id.
func (s *Server) snapshot(ctx context.Context, id int64) (*snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.snaps[id]
	if sn != nil && sn.fresh(time.Now()) {
		return sn, nil
	}
	changed := s.next()
	if sn != nil && sn.doc.Status == model.WorkflowDone {
		// A done workflow's jobs change only through a restart, which
		// changes its status first: one row read instead of every job.
		if st, err := s.c.WorkflowStatus(ctx, id); err == nil && st == model.WorkflowDone {
			renewed := *sn
			renewed.changed, renewed.read = changed, time.Now()
			s.snaps[id] = &renewed
			return &renewed, nil
		}
	}
	sn, err := readSnapshot(ctx, s.c, id, changed)
	if err != nil {
		delete(s.snaps, id)
		return nil, err
	}
	s.snaps[id] = sn
	s.sums[id] = sn.summary()
	// Keep the others while the jobs they hold fit the bound.
	total := len(sn.doc.Jobs)
	for k, o := range s.snaps {
		if k == id {
			continue
		}
		if total+len(o.doc.Jobs) > maxCachedJobs {
			delete(s.snaps, k)
			continue
		}
		total += len(o.doc.Jobs)
	}
	return sn, nil
}

// definition returns the workflow's definition and graph layout, made once
// per workflow (a definition never changes; the submission time tells a
// new workflow that got a removed one's id), waiting for it at most until
// ctx ends.
func (s *Server) definition(ctx context.Context, id int64, submitted string) (*defEntry, error) {
	e := s.loadDefinition(id, submitted)
	select {
	case <-e.ready:
		return e, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// loadDefinition returns the entry of a workflow's definition, starting to
// read and lay it out when no request did yet (once, whoever asks).
func (s *Server) loadDefinition(id int64, submitted string) *defEntry {
	s.defMu.Lock()
	defer s.defMu.Unlock()
	if e := s.defs[id]; e != nil && e.submitted == submitted {
		e.used = time.Now()
		return e
	}
	e := &defEntry{submitted: submitted, ready: make(chan struct{}), used: time.Now()}
	s.defs[id] = e
	for len(s.defs) > maxCachedDefs {
		var oldest int64
		var at time.Time
		for k, o := range s.defs {
			if k != id && (at.IsZero() || o.used.Before(at)) {
				oldest, at = k, o.used
			}
		}
		delete(s.defs, oldest)
	}
	go func() {
		// Not the request's context: other requests wait for it too.
		ctx, cancel := context.WithTimeout(context.Background(), defTimeout)
		defer cancel()
		def, err := s.c.Workflow(ctx, id)
		if err == nil {
			e.def, e.layout = def, newLayout(def)
		}
		e.err = err
		close(e.ready)
		if err != nil {
			s.defMu.Lock()
			if s.defs[id] == e {
				delete(s.defs, id) // the next request tries again
			}
			s.defMu.Unlock()
		}
	}()
	return e
}

// defTimeout bounds the reading of one definition.
const defTimeout = 5 * time.Minute

// forgetOthers drops what the server keeps of workflows no longer listed
// (removed).
func (s *Server) forgetOthers(ws []client.WorkflowInfo) {
	keep := make(map[int64]bool, len(ws))
	for _, w := range ws {
		keep[w.ID] = true
	}
	s.mu.Lock()
	for id := range s.sums {
		if !keep[id] {
			delete(s.sums, id)
			delete(s.snaps, id)
		}
	}
	s.mu.Unlock()
}

// summaryOf is what the list shows of a workflow: its cached summary when
// the workflow is done and was done then (a done workflow's jobs change
// only through a restart, which changes its status first), else a new
// reading.
func (s *Server) summaryOf(ctx context.Context, w client.WorkflowInfo) (*summary, error) {
	s.mu.Lock()
	sum := s.sums[w.ID]
	sn := s.snaps[w.ID]
	s.mu.Unlock()
	if sum != nil && sum.status == w.Status && (w.Status == model.WorkflowDone || (sn != nil && sn.fresh(time.Now()))) {
		return sum, nil
	}
	sn, err := s.snapshot(ctx, w.ID)
	if err != nil {
		return nil, err
	}
	return sn.summary(), nil
}

// fail answers an error: 404 for an unknown workflow or job, 400 for a bad
// argument, 500 otherwise (logged).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, client.ErrUnknownObject):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, client.ErrInvalid):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, context.Canceled):
	default:
		s.opts.Logger.Error("dashboard request", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error: "+err.Error(), http.StatusInternalServerError)
	}
}

func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: %q is not an id", client.ErrInvalid, r.PathValue(name))
	}
	return id, nil
}

// render executes one template into w as a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var b strings.Builder
	if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, b.String())
}

// liveDoc is what the pages poll: server-rendered fragments by element id
// (the page replaces those that changed), and when to ask again.
type liveDoc struct {
	Fragments  map[string]string `json:"fragments"`
	IntervalMS int               `json:"interval_ms"`
	Updated    string            `json:"updated"`
}

// fragments renders named templates (element id -> template) as a liveDoc.
func (s *Server) fragments(w http.ResponseWriter, r *http.Request, data any, ids map[string]string, slow bool) {
	doc := liveDoc{Fragments: map[string]string{}, IntervalMS: 2000, Updated: s.opts.Now().UTC().Format(time.RFC3339)}
	if slow {
		doc.IntervalMS = 5000
	}
	for id, name := range ids {
		var b strings.Builder
		if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
			s.fail(w, r, err)
			return
		}
		doc.Fragments[id] = b.String()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}
