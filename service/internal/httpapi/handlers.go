package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/notes-stack/notes/service/internal/notes"
)

func (s *server) handleHello() echo.HandlerFunc {
	type hello struct {
		Service  string `json:"service"`
		Message  string `json:"message"`
		Version  string `json:"version,omitempty"`
		Revision string `json:"revision,omitempty"`
	}
	return func(c echo.Context) error {
		return writeJSON(c, http.StatusOK, hello{Service: "notes", Message: "Hello from the notes service", Version: s.version, Revision: s.revision})
	}
}

func (s *server) handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func (s *server) handleReadyz() echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.draining.Load() {
			return notes.Errorf(notes.EUNAVAILABLE, "shutting down")
		}
		if err := s.pingDatabase(c.Request().Context()); err != nil {
			return err
		}
		return writeJSON(c, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// handleStartedz is the container healthcheck's endpoint: 503 until this process has reached
// the database once, 200 from then on, whatever the database does. Swarm restarts an unhealthy
// task, so a healthcheck on /readyz would turn a database outage of a few seconds into every
// replica restarting at once; a start-first update still waits for a new task to reach the
// database before the old one stops.
func (s *server) handleStartedz() echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.started.Load() {
			if err := s.pingDatabase(c.Request().Context()); err != nil {
				return err
			}
		}
		return writeJSON(c, http.StatusOK, map[string]string{"status": "started"})
	}
}

// pingDatabase is the readiness check (readyCheck: one SELECT 1 a second, shared by concurrent
// callers); a success marks the process started.
func (s *server) pingDatabase(ctx context.Context) error {
	if err := s.ready.check(ctx); err != nil {
		if notes.ErrorCode(err) != notes.EUNAVAILABLE {
			err = &notes.Error{Code: notes.EUNAVAILABLE, Message: "database unavailable", Err: err}
		}
		return err
	}
	s.started.Store(true)
	return nil
}

func (s *server) handleListNotes() echo.HandlerFunc {
	return func(c echo.Context) error {
		var q url.Values // parsed only when present: the common first page has none
		if c.QueryString() != "" {
			q = c.QueryParams()
		}
		limit := notes.DefaultLimit
		if v, ok := q["limit"]; ok {
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > notes.MaxLimit || len(v) > 1 {
				return notes.Errorf(notes.EINVALID, "limit must be an integer from 1 to %d", notes.MaxLimit)
			}
			limit = n
		}
		var after *notes.Cursor
		if v, ok := q["cursor"]; ok {
			if len(v) > 1 {
				return notes.Errorf(notes.EINVALID, "cursor is not valid")
			}
			cur, err := notes.DecodeCursor(v[0])
			if err != nil {
				return err
			}
			after = &cur
		}
		page, err := s.store.List(c.Request().Context(), after, limit)
		if err != nil {
			return err
		}
		if page.Next != nil {
			next := url.Values{"limit": {strconv.Itoa(limit)}, "cursor": {page.Next.Encode()}}
			c.Response().Header().Set("Link", "</api/notes?"+next.Encode()+`>; rel="next"`)
		}
		return writeNotes(c, http.StatusOK, page.Notes, false)
	}
}

// noteRequest is the JSON body of POST and PATCH: "title" and "body",
// strings or null. Unknown fields are ignored (as the Flask app did).
type noteRequest struct {
	title, body stringField
}

func (s *server) decodeNote(c echo.Context) (noteRequest, error) {
	members, err := s.decodeObject(c)
	if err != nil {
		return noteRequest{}, err
	}
	var req noteRequest
	if req.title, err = stringMember(members, "title"); err != nil {
		return noteRequest{}, err
	}
	if req.body, err = stringMember(members, "body"); err != nil {
		return noteRequest{}, err
	}
	return req, nil
}

// orNil is the field's value, or nil when it is absent or null.
func (f stringField) orNil() *string {
	if !f.present || f.null {
		return nil
	}
	return &f.value
}

func (s *server) handleCreateNote() echo.HandlerFunc {
	type created struct {
		ID int64 `json:"id"`
	}
	return func(c echo.Context) error {
		key, hasKey, err := idempotencyKey(c.Request().Header)
		if err != nil {
			return err
		}
		req, err := s.decodeNote(c)
		if err != nil {
			return err
		}
		title, body, err := notes.NewNote(notes.Input{Title: req.title.orNil(), Body: req.body.orNil()})
		if err != nil {
			return err
		}
		var n notes.Note
		if !hasKey {
			n, err = s.store.Create(c.Request().Context(), title, body)
		} else {
			var created bool
			n, created, err = s.store.CreateIdempotent(c.Request().Context(), key, title, body)
			if err == nil && !created {
				// A retry: answer as the first time if it is the same request.
				if n.Title != title || n.Body != body {
					return errIdempotencyKeyReused
				}
				c.Response().Header().Set(headerIdempotentReplayed, "true")
			}
		}
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/api/notes/"+strconv.FormatInt(n.ID, 10))
		return writeJSON(c, http.StatusCreated, created{ID: n.ID})
	}
}

func parseID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, notes.Errorf(notes.EINVALID, "note id must be a positive integer")
	}
	return id, nil
}

func (s *server) handleGetNote() echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c)
		if err != nil {
			return err
		}
		n, err := s.store.Get(c.Request().Context(), id)
		if err != nil {
			return err
		}
		return writeNotes(c, http.StatusOK, []notes.Note{n}, true)
	}
}

func (s *server) handlePatchNote() echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c)
		if err != nil {
			return err
		}
		req, err := s.decodeNote(c)
		if err != nil {
			return err
		}
		// A PATCH sets the fields it names and leaves the others alone.
		// null would mean "remove" in a JSON merge patch (RFC 7396), but
		// neither field can be absent from a note: say so instead of
		// silently doing nothing.
		for _, f := range []struct {
			name  string
			field stringField
		}{{"title", req.title}, {"body", req.body}} {
			if f.field.null {
				return notes.Errorf(notes.EUNPROCESS, "%s cannot be null: every note has one; send a string", f.name)
			}
		}
		p := notes.Patch{Title: req.title.orNil(), Body: req.body.orNil()}
		if err := p.Validate(); err != nil {
			return err
		}
		var n notes.Note
		if p.Title == nil && p.Body == nil {
			n, err = s.store.Get(c.Request().Context(), id)
		} else {
			n, err = s.store.Update(c.Request().Context(), id, p)
		}
		if err != nil {
			return err
		}
		return writeNotes(c, http.StatusOK, []notes.Note{n}, true)
	}
}

func (s *server) handleDeleteNote() echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c)
		if err != nil {
			return err
		}
		if err := s.store.Delete(c.Request().Context(), id); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}
