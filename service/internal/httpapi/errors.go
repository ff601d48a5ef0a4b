package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/notes-stack/notes/service/internal/notes"
)

// codeStatus maps domain error codes to HTTP statuses: the one table.
var codeStatus = map[string]int{
	notes.EINVALID:      http.StatusBadRequest,
	notes.EUNPROCESS:    http.StatusUnprocessableEntity,
	notes.EUNAUTHORIZED: http.StatusUnauthorized,
	notes.ENOTFOUND:     http.StatusNotFound,
	notes.EUNAVAILABLE:  http.StatusServiceUnavailable,
	notes.EINTERNAL:     http.StatusInternalServerError,
}

// problem is an RFC 9457 problem details object.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// statusClientClosedRequest is logged (never sent) when the client went away.
const statusClientClosedRequest = 499

// errorHandler is Echo's HTTPErrorHandler. It unwraps with errors.As (so
// wrapped errors keep their status) and writes application/problem+json.
func (s *server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := http.StatusInternalServerError, ""
	var (
		domErr  *notes.Error
		httpErr *echo.HTTPError
		mbe     *http.MaxBytesError
	)
	switch {
	case errors.As(err, &domErr):
		status = codeStatus[domErr.Code]
		if status == 0 {
			status = http.StatusInternalServerError
		}
		detail = domErr.Message
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
		detail = "request body is larger than the limit of " + strconv.FormatInt(mbe.Limit, 10) + " bytes"
	case errors.As(err, &httpErr):
		status = httpErr.Code
		if m, ok := httpErr.Message.(string); ok {
			detail = m
		}
	case errors.Is(err, context.Canceled):
		// The client is gone; nobody reads the answer.
		c.Response().Status = statusClientClosedRequest
		return
	}
	if domErr != nil && domErr.Code == notes.EUNPROCESS && domErr.Err != nil {
		// A rejection with a cause (the database's own message): the client
		// gets the domain message only, the log gets the cause.
		s.log.Warn("request rejected", "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			"status", status, "err", err.Error())
	}
	if status >= 500 {
		s.log.Error("request failed", "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			"status", status, "err", err.Error())
		if status == http.StatusInternalServerError {
			detail = "internal error"
		}
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "1")
	}
	p := problem{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  c.Request().URL.Path,
		RequestID: c.Response().Header().Get(echo.HeaderXRequestID),
	}
	if p.Title == "" {
		p.Title = "Error"
	}
	if detail == p.Title {
		p.Detail = ""
	}
	b, _ := json.Marshal(p) // strings and ints: Marshal cannot fail
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	if err := writeBody(c, status, "application/problem+json", b); err != nil {
		// The client is gone mid-answer; the access log has the status.
		s.log.Debug("writing the error response", "request_id", p.RequestID, "err", err.Error())
	}
}
