package client

// KillConnection kills a remote's ssh process: a cut connection, for tests.
func (r *Remote) KillConnection() { r.killConnection() }

// Changes is changes, for tests.
func (c *Client) Changes(workflows bool) (next func() <-chan struct{}, stop func()) {
	return c.changes(workflows)
}
