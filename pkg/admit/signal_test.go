package admit

import "testing"

func TestSignal(t *testing.T) {
	var s Signal
	s.Notify() // nobody waits: nothing to close
	c := s.Chan()
	if s.Chan() != c {
		t.Fatal("two waiters before a Notify got different channels")
	}
	select {
	case <-c:
		t.Fatal("closed before Notify")
	default:
	}
	s.Notify()
	select {
	case <-c:
	default:
		t.Fatal("not closed by Notify")
	}
	if s.Chan() == c {
		t.Fatal("a waiter after Notify got the closed channel")
	}
}
