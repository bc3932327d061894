package tp

import (
	"log/slog"
	"time"

	"github.com/equarx/equarx/weights"
)

// RankLoad is what binding one part of the weights read.
type RankLoad struct {
	Rank      int     // -1 for the replicated tensors
	BytesRead int64   // bytes of tensor data read from the files (0 when not counted)
	Seconds   float64 // wall time to read, decode and bind them
}

// LoadStats describes how the engine's weights were read in this process.
// Replicated tensors (embedding, norms) are read once and shared by the
// local ranks; each local rank then reads only its own shards, in parallel
// with the others.
type LoadStats struct {
	// Counted is false when the source does not count bytes (synthetic
	// weights, in-memory wrappers): BytesRead fields are then 0.
	Counted bool
	Shared  RankLoad
	Ranks   []RankLoad // local ranks, in order
	Seconds float64    // whole weight load, wall time
}

// BytesRead is the total over the shared tensors and the local ranks.
func (s LoadStats) BytesRead() int64 {
	n := s.Shared.BytesRead
	for _, r := range s.Ranks {
		n += r.BytesRead
	}
	return n
}

// LoadStats returns how the weights were read when the engine was built.
func (e *Engine) LoadStats() LoadStats {
	s := e.load
	s.Ranks = append([]RankLoad(nil), s.Ranks...)
	return s
}

// Log writes one line for the replicated tensors, one per local rank and a
// total.
func (s LoadStats) Log(log *slog.Logger) {
	if log == nil {
		return
	}
	log.Info("weights loaded: replicated tensors", "bytes_read", s.Shared.BytesRead,
		"seconds", s.Shared.Seconds, "counted", s.Counted)
	for _, r := range s.Ranks {
		log.Info("weights loaded: rank shards", "rank", r.Rank, "bytes_read", r.BytesRead, "seconds", r.Seconds)
	}
	log.Info("weights loaded", "bytes_read", s.BytesRead(), "mib_read", float64(s.BytesRead())/(1<<20),
		"seconds", s.Seconds, "ranks", len(s.Ranks))
}

// loadTimer counts the reads and the time of one part of the load.
type loadTimer struct {
	src     weights.ReadCounter
	counted bool
	start   time.Time
}

func startLoad(src weights.Source) loadTimer {
	v, counted := weights.CountReads(src)
	return loadTimer{src: v, counted: counted, start: time.Now()}
}

func (l loadTimer) done(rank int) RankLoad {
	return RankLoad{Rank: rank, BytesRead: l.src.BytesRead(), Seconds: time.Since(l.start).Seconds()}
}
