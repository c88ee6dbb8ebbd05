package admit

// Signal tells waiters that a structure guarded by its own mutex changed:
// Chan returns a channel that the next Notify closes. Both are called with
// that mutex held; the zero value is ready. To wait for a state without
// missing a change, take the channel, check the state, then wait.
type Signal struct{ c chan struct{} }

// Chan returns the channel the next Notify closes.
func (s *Signal) Chan() <-chan struct{} {
	if s.c == nil {
		s.c = make(chan struct{})
	}
	return s.c
}

// Notify closes the channel of the waiters since the last Notify, if any.
func (s *Signal) Notify() {
	if s.c != nil {
		close(s.c)
		s.c = nil
	}
}
