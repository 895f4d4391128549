package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// startProfiles writes a CPU profile of the whole run to dir/cpu.pprof and,
// when the returned stop runs, allocation and heap profiles next to it.
// `make bench --profile-dir` uses it; it is a hidden svc flag.
func startProfiles(dir string) (stop func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		errs := []error{cpu.Close()}
		runtime.GC() // the heap profile shows what is live, not garbage
		for _, name := range []string{"allocs", "heap"} {
			f, err := os.Create(filepath.Join(dir, name+".pprof"))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, pprof.Lookup(name).WriteTo(f, 0), f.Close())
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("profiles in %s: %w", dir, err)
		}
		return nil
	}, nil
}
