package control

// tempBase is /tmp on macOS, not $TMPDIR: every user's $TMPDIR there is a
// private /var/folders/… path that sudo, osascript and pkexec-like prompts
// do not pass to root, so root's kubefwd and the user's `kubefwd status`
// would look for the socket in different places.
func tempBase() string { return "/tmp" }
