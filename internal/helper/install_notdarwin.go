//go:build unix && !darwin

package helper

func platformManager() serviceManager { return systemd{} }
