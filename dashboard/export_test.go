package dashboard

// Forget drops the server's reading of workflow id (benchmarks: a poll
// after a change).
func (s *Server) Forget(id int64) {
	s.mu.Lock()
	delete(s.snaps, id)
	s.mu.Unlock()
}
