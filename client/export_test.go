package client

// KillConnection kills a remote's ssh process: a cut connection, for tests.
func (r *Remote) KillConnection() { r.killConnection() }
