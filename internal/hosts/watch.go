package hosts

import (
	"context"

	"github.com/kubefwd/kubefwd/internal/filewatch"
)

// Watch calls changed whenever the file may have been changed by anyone:
// written in place, replaced by a rename, removed or created. Other
// programs rewrite hosts files (VPN clients, network managers, editors)
// and may drop kubefwd's block; the caller applies its entries again,
// which leaves an unchanged file untouched, so its own writes settle
// after one more look. The directory is watched, not the file, so a
// replaced file is still followed. add runs the watch's setup (with the
// rights the file is written with); bursts are reported once. It returns
// when ctx ends, or at once when the directory cannot be watched.
func (f *File) Watch(ctx context.Context, add func(func() error) error, changed func()) error {
	w, err := filewatch.Start(f.Path, add)
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Run(ctx, changed, func(error) {})
}
