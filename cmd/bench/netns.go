package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// emuHosts is a set of emulated hosts: one Linux network namespace per
// rank (prefix-r<i>), each with a veth to a bridge that lives in a
// namespace of its own (prefix-br), so no interface of the host's own
// namespace is created or touched. Each host's link is shaped with tbf in
// both directions (the veth end in the host's namespace for what it sends,
// the bridge end for what it receives). Needs root and iproute2.
type emuHosts struct {
	prefix string
	n      int
	subnet string // first three octets, e.g. "10.213.7"
	gbps   float64
	delay  time.Duration
}

// netnsPrefix is unique per process: eqx<pid>.
func netnsPrefix() string { return fmt.Sprintf("eqx%d", os.Getpid()) }

// ipCmd runs ip or tc with a bound on its time.
func ipCmd(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkNetnsTools reports why emulated hosts cannot be made here, or nil.
func checkNetnsTools() error {
	if os.Geteuid() != 0 {
		return errors.New("shaped links need root (network namespaces and tc)")
	}
	for _, t := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("shaped links need %s (Debian package iproute2): %w", t, err)
		}
	}
	return nil
}

func (h *emuHosts) host(i int) string { return fmt.Sprintf("%s-r%d", h.prefix, i) }
func (h *emuHosts) bridge() string    { return h.prefix + "-br" }
func (h *emuHosts) addr(i int) string { return fmt.Sprintf("%s.%d", h.subnet, i+1) }

// tbfArgs shapes a device to h.gbps: the bucket holds 200 us of traffic
// (at least 96 KiB, above a 64 KiB GSO packet) and the queue 16 MiB. A
// short queue (5 ms) dropped packets at the sending host's own egress when
// one rank wrote to three peers at once, and TCP then waited for
// retransmission timeouts; a real NIC stops the socket instead of
// dropping, which the long queue mimics.
func (h *emuHosts) tbfArgs(dev string) []string {
	rate := h.gbps * 1e9 / 8
	burst := max(int(rate*200e-6), 96<<10)
	return []string{"qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf",
		"rate", fmt.Sprintf("%dkbit", int64(h.gbps*1e6)), "burst", fmt.Sprint(burst), "limit", fmt.Sprint(16 << 20)}
}

// setup creates the namespaces, veths, bridge and shaping. On error it
// removes what it made.
func (h *emuHosts) setup(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			h.teardown()
		}
	}()
	br := h.bridge()
	steps := [][]string{
		{"ip", "netns", "add", br},
		{"ip", "-n", br, "link", "set", "lo", "up"},
		{"ip", "-n", br, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", br, "link", "set", "br0", "up"},
	}
	for i := 0; i < h.n; i++ {
		ns, v := h.host(i), fmt.Sprintf("v%d", i)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "-n", br, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "-n", br, "link", "set", v, "master", "br0"},
			[]string{"ip", "-n", br, "link", "set", v, "up"},
			[]string{"ip", "-n", ns, "addr", "add", h.addr(i) + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
		)
		if h.gbps > 0 {
			steps = append(steps,
				append([]string{"tc", "-n", ns}, h.tbfArgs("eth0")...),
				append([]string{"tc", "-n", br}, h.tbfArgs(v)...))
			if h.delay > 0 {
				// netem under tbf delays what the host sends.
				steps = append(steps, []string{"tc", "-n", ns, "qdisc", "add", "dev", "eth0", "parent", "1:1", "handle", "10:",
					"netem", "delay", fmt.Sprintf("%dus", h.delay.Microseconds())})
			}
		}
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s[0], s[1:]...); err != nil {
			if s[0] == "tc" && strings.Contains(err.Error(), "netem") {
				return fmt.Errorf("link delay needs the netem qdisc (kernel CONFIG_NET_SCH_NETEM), which this kernel lacks: %w", err)
			}
			return err
		}
	}
	return nil
}

// command wraps argv to run inside host i's namespace.
func (h *emuHosts) command(i int, argv []string) []string {
	return append([]string{"ip", "netns", "exec", h.host(i)}, argv...)
}

// teardown deletes every namespace with this prefix (deleting a namespace
// deletes its veth ends, the bridge and the qdiscs). It does not stop on
// errors and uses its own deadline, so it also runs after a cancel.
func (h *emuHosts) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, ns := range leftoverNamespaces(h.prefix) {
		if err := ipCmd(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// leftoverNamespaces lists the namespaces named prefix-*.
func leftoverNamespaces(prefix string) []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var ns []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			ns = append(ns, f[0])
		}
	}
	return ns
}
