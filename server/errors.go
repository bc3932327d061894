package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Error types carried in the "type" field of every error body.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeTooLarge       = "request_too_large"
	TypeNotFound       = "not_found_error"
	TypeMethod         = "method_not_allowed"
	TypeQueueFull      = "queue_full"
	TypeTimeout        = "timeout"
	TypeCancelled      = "client_cancelled"
	TypeUnavailable    = "unavailable"
	TypeEngine         = "engine_error"
	TypeInternal       = "internal_error"
)

// StatusClientClosed is recorded when the client went away before the answer
// was ready (nginx's convention; the client never sees it).
const StatusClientClosed = 499

// ErrorBody is the JSON shape of every error response:
// {"error": {"message": "...", "type": "..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes one failed request.
type ErrorDetail struct {
	Message string `json:"message"`
	Type    string `json:"type"`
}

// apiError is an error that knows its HTTP status and error type.
type apiError struct {
	status int
	typ    string
	msg    string
	err    error // optional cause, for errors.Is / logging
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.err }

func badRequest(format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: TypeInvalidRequest, msg: fmt.Sprintf(format, a...)}
}

func tooLarge(format string, a ...any) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, typ: TypeTooLarge, msg: fmt.Sprintf(format, a...)}
}

// Sentinel errors of the request path.
var (
	// ErrQueueFull is returned when the batching queue has no room (429).
	ErrQueueFull = errors.New("request queue is full")
	// ErrNotReady is returned while no model is loaded (503).
	ErrNotReady = errors.New("model is not loaded yet")
	// ErrShuttingDown is returned once the server has stopped accepting work (503).
	ErrShuttingDown = errors.New("server is shutting down")
)

// InputErrorClassifier reports the HTTP status for an engine error caused by
// the request itself (400 or 413), or 0 when the error is the engine's own.
type InputErrorClassifier func(error) int

// toAPIError maps any error of the request path to its status and type.
// client is the request's own context (to tell a disconnect from a timeout).
func (s *Server) toAPIError(client context.Context, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	switch {
	case errors.Is(err, ErrQueueFull):
		return &apiError{status: http.StatusTooManyRequests, typ: TypeQueueFull, msg: err.Error(), err: err}
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrShuttingDown):
		return &apiError{status: http.StatusServiceUnavailable, typ: TypeUnavailable, msg: err.Error(), err: err}
	case errors.Is(err, context.Canceled) && client.Err() != nil:
		return &apiError{status: StatusClientClosed, typ: TypeCancelled, msg: "client closed the request", err: err}
	case errors.Is(err, context.DeadlineExceeded) && !errors.As(err, new(*engineError)):
		// A deadline inside the engine (an AllReduce timeout) is the
		// engine's failure, reported below; only the request's own
		// deadline is a 504.
		return &apiError{status: http.StatusGatewayTimeout, typ: TypeTimeout,
			msg: fmt.Sprintf("request did not finish within %s", s.opts.RequestTimeout), err: err}
	}
	if be := s.backend.Load(); be != nil && be.Classify != nil {
		switch st := be.Classify(err); st {
		case http.StatusBadRequest:
			return &apiError{status: st, typ: TypeInvalidRequest, msg: err.Error(), err: err}
		case http.StatusRequestEntityTooLarge:
			return &apiError{status: st, typ: TypeTooLarge, msg: err.Error(), err: err}
		case http.StatusServiceUnavailable:
			return &apiError{status: st, typ: TypeUnavailable, msg: err.Error(), err: err}
		}
	}
	var ee *engineError
	if errors.As(err, &ee) {
		return &apiError{status: http.StatusInternalServerError, typ: TypeEngine, msg: err.Error(), err: err}
	}
	return &apiError{status: http.StatusInternalServerError, typ: TypeInternal, msg: err.Error(), err: err}
}

// engineError marks a failure inside the engine that is not the request's fault.
type engineError struct{ err error }

func (e *engineError) Error() string { return "engine: " + e.err.Error() }
func (e *engineError) Unwrap() error { return e.err }

// renderError is the single place error responses are written.
func (s *Server) renderError(c *gin.Context, err error) {
	ae := s.toAPIError(c.Request.Context(), err)
	if ae.status >= 500 && ae.status != StatusClientClosed {
		s.log.Error("request failed", "route", c.FullPath(), "status", ae.status, "err", err)
	}
	c.Error(err) //nolint:errcheck // recorded for middleware only
	c.Abort()
	c.PureJSON(ae.status, ErrorBody{Error: ErrorDetail{Message: ae.msg, Type: ae.typ}})
}
