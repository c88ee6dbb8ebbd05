package juice

// SetMaxResolveLookups lowers the lookup budget of Resolve calls for a
// test, and returns what restores it.
func SetMaxResolveLookups(n int) (restore func()) {
	old := maxResolveLookups
	maxResolveLookups = n
	return func() { maxResolveLookups = old }
}
