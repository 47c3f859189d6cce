package dashboard

// Forget drops the server's reading of workflow id (benchmarks: a poll
// after a change).
func (s *Server) Forget(id int64) {
	s.mu.Lock()
	delete(s.snaps, id)
	s.mu.Unlock()
}

// WaitDefinitions waits until the definitions being read are read
// (benchmarks: a new server's work does not spill into the next one's).
func (s *Server) WaitDefinitions() {
	s.defMu.Lock()
	var es []*defEntry
	for _, e := range s.defs {
		es = append(es, e)
	}
	s.defMu.Unlock()
	for _, e := range es {
		<-e.ready
	}
}
