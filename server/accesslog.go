package server

import (
	"log/slog"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// reqKey is the gin context key under which a scoring handler leaves what
// the access log reports about the engine work of its request.
const reqKey = "equarx.request"

// reqNote is what one request made the engine do.
type reqNote struct {
	promptTokens int     // tokens the model read, BOS the server added included
	codec        string  // codecs that travelled, in order of first use ("bf16", "int8", "bf16+int8", "bf16,int8")
	simSeconds   float64 // simulated TPU time of the engine calls the request rode in
	engineWall   float64 // CPU wall time of those calls
}

// noteRun records the engine work of a request's sequences. Sequences that
// rode in the same engine call count that call once.
func noteRun(c *gin.Context, specs []seqSpec, rs []jobResult) {
	n := reqNote{}
	seen := map[uint64]bool{}
	var codecs []string
	for i, r := range rs {
		n.promptTokens += len(specs[i].ids)
		if seen[r.batch.ID] {
			continue
		}
		seen[r.batch.ID] = true
		n.simSeconds += r.batch.SimSeconds
		n.engineWall += r.batch.WallSeconds
		cd := string(r.batch.Codec)
		dup := false
		for _, x := range codecs {
			dup = dup || x == cd
		}
		if !dup {
			codecs = append(codecs, cd)
		}
	}
	n.codec = strings.Join(codecs, ",")
	c.Set(reqKey, n)
}

// accessLog writes one line per request at info level: method, route,
// status, and for the scoring routes the prompt tokens, the codec used,
// and the simulated TPU seconds, beside the request's CPU wall seconds.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", c.Writer.Status()),
		slog.Float64("wall_seconds", time.Since(start).Seconds()),
	}
	if v, ok := c.Get(reqKey); ok {
		n := v.(reqNote)
		attrs = append(attrs,
			slog.Int("prompt_tokens", n.promptTokens),
			slog.String("allreduce_codec_used", n.codec),
			slog.Float64("sim_tpu_seconds", n.simSeconds),
			slog.Float64("engine_wall_seconds", n.engineWall),
		)
	}
	s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
}
