package seed

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "demo", want: Spec{Name: "demo"}},
		{in: "scale:5x100", want: Spec{Name: "scale", Namespaces: 5, ServicesPerNamespace: 100}},
		{in: "scale:1x1", want: Spec{Name: "scale", Namespaces: 1, ServicesPerNamespace: 1}},
		{in: "", wantErr: `unknown seed ""`},
		{in: "Demo", wantErr: `unknown seed "Demo"`},
		{in: "scale:", wantErr: "want scale:NxM"},
		{in: "scale:5", wantErr: "want scale:NxM"},
		{in: "scale:0x10", wantErr: "positive integers"},
		{in: "scale:5x-1", wantErr: "positive integers"},
		{in: "scale:axb", wantErr: "positive integers"},
		{in: "scale:5x5x5", wantErr: "positive integers"},
		{in: "scale:1000x1000", wantErr: "more than the limit"},
		{in: "scale:9223372036854775807x2", wantErr: "more than the limit"},
	} {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error = %v, want it to mention %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("Parse(%q).String() = %q", tc.in, got.String())
		}
	}
}

// Whatever Parse accepts, it spells back the same way and within limits.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"demo", "scale:5x100", "scale:0x1", "scale:99999999999999999999x1", "scale:1x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		spec, err := Parse(in)
		if err != nil {
			return
		}
		if spec.Name == "scale" {
			if spec.Namespaces < 1 || spec.ServicesPerNamespace < 1 || spec.Namespaces*spec.ServicesPerNamespace > MaxScale {
				t.Fatalf("Parse(%q) accepted out-of-range %+v", in, spec)
			}
		}
		again, err := Parse(spec.String())
		if err != nil || again != spec {
			t.Fatalf("round trip of %q: %+v → %q → %+v, %v", in, spec, spec.String(), again, err)
		}
	})
}
