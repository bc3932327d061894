package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// Rendezvous: node 0 listens on the group's master address and is its
// store. Every other node dials it (proving the token and matching
// fingerprints in the connection preamble), publishes its own data-plane
// address in a join message, and gets the address table back once every
// node has joined. Then node k dials nodes 1..k-1 (the others dial k), and
// the group is complete when every pair is connected. A node that joins a
// group that was already complete (a restarted worker) gets the table at
// once and dials every node, replacing the connections its earlier life
// left behind.

type joinMsg struct {
	Type string `json:"type"` // "join"
	Node int    `json:"node"`
	Addr string `json:"addr"`
}

type tableMsg struct {
	Type   string   `json:"type"` // "table"
	Addrs  []string `json:"addrs"`
	Rejoin bool     `json:"rejoin"`
}

// master is node 0's store state.
type master struct {
	mu      sync.Mutex
	addrs   []string
	formed  bool   // every node joined once
	waiting []int  // joiners not yet sent the table
	ready   []bool // node connected to every peer since it last joined
}

type readyMsg struct {
	Type string `json:"type"` // "ready"
	Node int    `json:"node"`
}

// Join forms the group. On node 0 it serves joins (for the node's whole
// life, so restarted workers can join again) and waits until every peer
// is connected; on other nodes it dials the master at masterAddr (retrying
// until ctx ends: the master may start later), joins, and connects to its
// peers. advertise is this node's data-plane address as peers can reach
// it (default: the bound address). Join returns when the group is complete
// or fails when ctx ends first, naming the nodes still missing.
func (n *Node) Join(ctx context.Context, masterAddr, advertise string) error {
	if advertise == "" {
		advertise = n.Addr()
	}
	if n.cfg.Node == 0 {
		n.serveJoins()
		return n.waitComplete(ctx)
	}
	for {
		err := n.Dial(ctx, 0, masterAddr)
		if err == nil {
			break
		}
		if errors.Is(err, ErrAuth) || errors.Is(err, ErrFingerprint) || ctx.Err() != nil {
			return fmt.Errorf("transport: node %d: join %s: %w", n.cfg.Node, masterAddr, err)
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			// a refused preamble: the master closed on us
			n.cfg.Logger.Warn("transport: join attempt failed", "node", n.cfg.Node, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transport: node %d: join %s: %w (last: %v)", n.cfg.Node, masterAddr, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	b, _ := json.Marshal(joinMsg{Type: "join", Node: n.cfg.Node, Addr: advertise})
	if err := n.SendControl(0, b); err != nil {
		return err
	}
	msg, err := n.RecvControl(ctx, 0)
	if err != nil {
		return fmt.Errorf("transport: node %d: waiting for the address table: %w", n.cfg.Node, err)
	}
	var t tableMsg
	if err := json.Unmarshal(msg, &t); err != nil || t.Type != "table" || len(t.Addrs) != n.cfg.Nodes {
		return fmt.Errorf("transport: node %d: malformed address table from the master (%d bytes)", n.cfg.Node, len(msg))
	}
	for k := 1; k < n.cfg.Nodes; k++ {
		if k == n.cfg.Node || (k > n.cfg.Node && !t.Rejoin) {
			continue
		}
		if err := n.Dial(ctx, k, t.Addrs[k]); err != nil {
			return err
		}
	}
	if err := n.waitComplete(ctx); err != nil {
		return err
	}
	// Tell the master this node can take part in calls.
	b, _ = json.Marshal(readyMsg{Type: "ready", Node: n.cfg.Node})
	return n.SendControl(0, b)
}

// Unready returns the peer nodes that cannot take part in a call now: on
// node 0, those not connected or not yet connected to all their peers
// since they last joined; elsewhere, those not connected.
func (n *Node) Unready() []int {
	miss := n.Missing()
	n.mu.Lock()
	m := n.master
	n.mu.Unlock()
	if n.cfg.Node != 0 || m == nil {
		return miss
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := 1; k < n.cfg.Nodes; k++ {
		if !m.ready[k] && !slices.Contains(miss, k) {
			miss = append(miss, k)
		}
	}
	slices.Sort(miss)
	return miss
}

// waitComplete waits until Unready is empty: every peer connected and, on
// node 0, every worker ready.
func (n *Node) waitComplete(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		miss := n.Unready()
		if len(miss) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transport: node %d: group incomplete, nodes %v not ready: %w", n.cfg.Node, miss, ctx.Err())
		case <-tick.C:
		}
	}
}

// serveJoins starts node 0's store: one goroutine per peer reading its
// join messages for the node's life.
func (n *Node) serveJoins() {
	m := &master{addrs: make([]string, n.cfg.Nodes), ready: make([]bool, n.cfg.Nodes)}
	m.addrs[0] = n.Addr()
	m.ready[0] = true
	n.mu.Lock()
	n.master = m
	n.mu.Unlock()
	for k := 1; k < n.cfg.Nodes; k++ {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-n.done
				cancel()
			}()
			for {
				msg, err := n.ctrl[k].get(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					// Peer k is not connected: wait for it to (re)join.
					select {
					case <-ctx.Done():
						return
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				var j joinMsg
				if err := json.Unmarshal(msg, &j); err != nil || j.Node != k {
					n.cfg.Logger.Warn("transport: malformed control message", "from", k, "bytes", len(msg))
					continue
				}
				switch j.Type {
				case "join":
					n.join(m, k, j.Addr)
				case "ready":
					m.mu.Lock()
					m.ready[k] = true
					m.mu.Unlock()
					n.cfg.Logger.Info("transport: node ready", "node", k)
					n.changed()
				default:
					n.cfg.Logger.Warn("transport: unknown control message", "from", k, "type", j.Type)
				}
			}
		}()
	}
}

func (n *Node) join(m *master, k int, addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addrs[k] = addr
	m.ready[k] = false
	n.cfg.Logger.Info("transport: node joined", "node", k, "addr", addr, "rejoin", m.formed)
	if m.formed {
		n.sendTable(m, k, true)
		return
	}
	if !slices.Contains(m.waiting, k) {
		m.waiting = append(m.waiting, k)
	}
	for _, a := range m.addrs {
		if a == "" {
			return
		}
	}
	m.formed = true
	for _, w := range m.waiting {
		n.sendTable(m, w, false)
	}
	m.waiting = nil
}

func (n *Node) sendTable(m *master, k int, rejoin bool) {
	b, _ := json.Marshal(tableMsg{Type: "table", Addrs: m.addrs, Rejoin: rejoin})
	if err := n.SendControl(k, b); err != nil {
		n.cfg.Logger.Warn("transport: send address table", "node", k, "err", err)
	}
}

// LocalAddrToward returns the local IP address this host uses to reach
// addr (host:port), without sending anything: the address to bind and
// advertise when none is configured.
func LocalAddrToward(addr string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	host, _, err := net.SplitHostPort(c.LocalAddr().String())
	return host, err
}
