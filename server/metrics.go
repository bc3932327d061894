package server

import (
	"errors"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/tp"
)

// metrics live in a private registry served by GET /metrics.
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	promptTokens   *prometheus.CounterVec
	requestTokens  prometheus.Histogram
	batchSeqs      prometheus.Histogram
	batchTokens    prometheus.Histogram
	engineWall     *prometheus.HistogramVec
	engineErrors   prometheus.Counter
	rejected       prometheus.Counter
	allreduceCalls *prometheus.CounterVec
	wireBytes      *prometheus.CounterVec
	simSeconds     *prometheus.CounterVec
	simARSeconds   *prometheus.CounterVec
	quantErr       *prometheus.HistogramVec
	ready          prometheus.Gauge
}

func newMetrics(queueDepth func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "equarx_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "equarx_http_request_duration_seconds", Help: "HTTP request latency by route (CPU wall clock).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"route"}),
		promptTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "equarx_prompt_tokens_total", Help: "Prompt tokens prefilled, by AllReduce codec.",
		}, []string{"codec"}),
		requestTokens: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "equarx_request_prompt_tokens", Help: "Prompt tokens per sequence.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16),
		}),
		batchSeqs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "equarx_batch_sequences", Help: "Sequences packed into one engine call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		batchTokens: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "equarx_batch_tokens", Help: "Tokens packed into one engine call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16),
		}),
		engineWall: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "equarx_engine_wall_seconds", Help: "CPU wall time of one engine call, by codec.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"codec"}),
		engineErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "equarx_engine_errors_total", Help: "Engine calls that failed.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "equarx_queue_rejected_total", Help: "Requests refused because the queue was full.",
		}),
		allreduceCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "equarx_allreduce_calls_total", Help: "AllReduce calls, by codec actually used.",
		}, []string{"codec"}),
		wireBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "equarx_allreduce_wire_bytes_total", Help: "AllReduce bytes sent, summed over devices, by codec.",
		}, []string{"codec"}),
		simSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "equarx_sim_tpu_seconds_total", Help: "Simulated TPU time of engine calls (critical path), by codec.",
		}, []string{"codec"}),
		simARSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "equarx_sim_tpu_allreduce_seconds_total", Help: "Simulated TPU time spent in AllReduce, by codec.",
		}, []string{"codec"}),
		quantErr: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "equarx_allreduce_quant_rel_rms_error", Help: "Relative RMS error of the final AllReduce quantization of each engine call (all-gather encoding of the reduced values), by codec actually used; f32 calls are not observed.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2, 14),
		}, []string{"codec"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "equarx_ready", Help: "1 once the model is loaded and requests are served.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.promptTokens, m.requestTokens, m.batchSeqs, m.batchTokens,
		m.engineWall, m.engineErrors, m.rejected, m.allreduceCalls, m.wireBytes, m.simSeconds, m.simARSeconds, m.quantErr, m.ready,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "equarx_queue_depth", Help: "Sequences waiting for the engine.",
		}, queueDepth),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// middleware counts every request by route and status and times it.
func (m *metrics) middleware(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	for _, e := range c.Errors {
		var ae *apiError
		if errors.As(e.Err, &ae) && ae.status == StatusClientClosed {
			status = StatusClientClosed
		}
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

func (m *metrics) observeBatch(seqs, tokens int, codec collective.CodecKind, res *tp.PrefillResult, err error, wall float64) {
	m.batchSeqs.Observe(float64(seqs))
	m.batchTokens.Observe(float64(tokens))
	if err != nil {
		m.engineErrors.Inc()
		return
	}
	used := string(res.Codec)
	if used == "" {
		used = string(codec)
	}
	m.engineWall.WithLabelValues(string(codec)).Observe(wall)
	m.promptTokens.WithLabelValues(string(codec)).Add(float64(tokens))
	m.allreduceCalls.WithLabelValues(used).Add(float64(res.AllReduceCalls))
	m.wireBytes.WithLabelValues(used).Add(float64(res.WireBytes))
	m.simSeconds.WithLabelValues(used).Add(res.SimSeconds)
	m.simARSeconds.WithLabelValues(used).Add(res.SimAllReduceSeconds)
	if res.QuantRelErrRMS > 0 {
		m.quantErr.WithLabelValues(used).Observe(res.QuantRelErrRMS)
	}
}
