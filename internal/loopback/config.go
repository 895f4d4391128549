package loopback

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultBase is where automatic allocation starts (upstream kubefwd's).
var DefaultBase = netip.AddrFrom4([4]byte{127, 1, 27, 1})

// Reservation pins a name to an address.
type Reservation struct {
	Name string
	Addr netip.Addr
}

// Config is what -z and -r say.
type Config struct {
	Base         netip.Addr // first address of automatic allocation
	Reservations []Reservation
}

// fileConfig is upstream kubefwd's -z schema.
type fileConfig struct {
	BaseUnreservedIP      string `json:"baseUnreservedIP"`
	ServiceConfigurations []struct {
		Name string `json:"name"`
		IP   string `json:"ip"`
	} `json:"serviceConfigurations"`
}

// LoadFile reads a -z file. Unknown keys are errors: a misspelt key must not
// silently leave the user's reservations out.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("--fwd-conf %s: %w", path, err)
	}
	return ParseFile(path, data)
}

// ParseFile parses the contents of a -z file named path.
func ParseFile(path string, data []byte) (Config, error) {
	var fc fileConfig
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.UnmarshalStrict(data, &fc); err != nil {
			return Config{}, fmt.Errorf("--fwd-conf %s: %s", path, cleanYAMLError(err))
		}
	}
	cfg := Config{Base: DefaultBase}
	if fc.BaseUnreservedIP != "" {
		a, err := parseLoopback(fc.BaseUnreservedIP)
		if err != nil {
			return Config{}, fmt.Errorf("--fwd-conf %s: baseUnreservedIP: %w", path, err)
		}
		cfg.Base = a
	}
	for i, sc := range fc.ServiceConfigurations {
		where := fmt.Sprintf("--fwd-conf %s: serviceConfigurations[%d]", path, i)
		if strings.TrimSpace(sc.Name) == "" {
			return Config{}, fmt.Errorf("%s: name is empty", where)
		}
		a, err := parseLoopback(sc.IP)
		if err != nil {
			return Config{}, fmt.Errorf("%s (%s): ip: %w", where, sc.Name, err)
		}
		cfg.Reservations = append(cfg.Reservations, Reservation{Name: strings.TrimSpace(sc.Name), Addr: a})
	}
	if err := validate(cfg.Reservations); err != nil {
		return Config{}, fmt.Errorf("--fwd-conf %s: %w", path, err)
	}
	return cfg, nil
}

// ParseReserve parses one -r name:ip.
func ParseReserve(s string) (Reservation, error) {
	name, ip, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return Reservation{}, fmt.Errorf("--reserve %q: want name:ip, e.g. api:127.1.28.1", s)
	}
	a, err := parseLoopback(strings.TrimSpace(ip))
	if err != nil {
		return Reservation{}, fmt.Errorf("--reserve %q: %w", s, err)
	}
	return Reservation{Name: name, Addr: a}, nil
}

// Merge adds -r reservations to a -z config; a -r entry for a name the file
// also names replaces the file's, as upstream does.
func Merge(cfg Config, cli []Reservation) (Config, error) {
	out := Config{Base: cfg.Base}
	if !out.Base.IsValid() {
		out.Base = DefaultBase
	}
	override := map[string]bool{}
	for _, r := range cli {
		override[r.Name] = true
	}
	for _, r := range cfg.Reservations {
		if !override[r.Name] {
			out.Reservations = append(out.Reservations, r)
		}
	}
	out.Reservations = append(out.Reservations, cli...)
	if err := validate(out.Reservations); err != nil {
		return Config{}, err
	}
	return out, nil
}

func validate(rs []Reservation) error {
	byAddr := map[netip.Addr]string{}
	byName := map[string]netip.Addr{}
	for _, r := range rs {
		if other, ok := byAddr[r.Addr]; ok && other != r.Name {
			return fmt.Errorf("address %s is reserved for both %q and %q", r.Addr, other, r.Name)
		}
		if other, ok := byName[r.Name]; ok && other != r.Addr {
			return fmt.Errorf("%q is reserved twice, for %s and %s", r.Name, other, r.Addr)
		}
		byAddr[r.Addr], byName[r.Name] = r.Name, r.Addr
	}
	return nil
}

// parseLoopback accepts an IPv4 address inside 127.0.0.0/8 that is usable
// for a listener (not the network or broadcast address).
func parseLoopback(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	if !a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("%s is outside 127.0.0.0/8", a)
	}
	if b := a.As4(); b == [4]byte{127, 0, 0, 0} || b == [4]byte{127, 255, 255, 255} {
		return netip.Addr{}, fmt.Errorf("%s cannot be listened on", a)
	}
	return a, nil
}

func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
	return msg
}
