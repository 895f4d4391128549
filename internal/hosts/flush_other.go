//go:build !darwin

package hosts

// FlushDNSCache does nothing here: Linux and Windows resolvers read the
// hosts file afresh (or watch it).
func FlushDNSCache() error { return nil }
