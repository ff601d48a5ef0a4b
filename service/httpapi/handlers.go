package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/notes-stack/notes/service/notes"
)

func (s *server) handleHello() echo.HandlerFunc {
	type hello struct {
		Service string `json:"service"`
		Message string `json:"message"`
		Version string `json:"version,omitempty"`
	}
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, hello{Service: "notes", Message: "Hello from the notes service", Version: s.version})
	}
}

func (s *server) handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

func (s *server) handleReadyz() echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.draining.Load() {
			return notes.Errorf(notes.EUNAVAILABLE, "shutting down")
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.readyTimeout)
		defer cancel()
		if err := s.store.Ping(ctx); err != nil {
			if notes.ErrorCode(err) != notes.EUNAVAILABLE {
				err = &notes.Error{Code: notes.EUNAVAILABLE, Message: "database unavailable", Err: err}
			}
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	}
}

// noteJSON is the wire form; created_at is RFC 3339 with microseconds, UTC.
type noteJSON struct {
	ID        int64  `json:"id"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	CreatedAt string `json:"created_at"`
}

func toJSON(n notes.Note) noteJSON {
	return noteJSON{ID: n.ID, Title: n.Title, Body: n.Body,
		CreatedAt: n.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00")}
}

func (s *server) handleListNotes() echo.HandlerFunc {
	return func(c echo.Context) error {
		q := c.QueryParams()
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
		out := make([]noteJSON, len(page.Notes))
		for i, n := range page.Notes {
			out[i] = toJSON(n)
		}
		return c.JSON(http.StatusOK, out)
	}
}

// noteRequest is the JSON body of POST and PATCH. Unknown fields are ignored
// (as the Flask app did).
type noteRequest struct {
	Title *string `json:"title"`
	Body  *string `json:"body"`
}

func (s *server) handleCreateNote() echo.HandlerFunc {
	type created struct {
		ID int64 `json:"id"`
	}
	return func(c echo.Context) error {
		var req noteRequest
		if err := s.decodeJSON(c, &req); err != nil {
			return err
		}
		title, body, err := notes.NewNote(notes.Input{Title: req.Title, Body: req.Body})
		if err != nil {
			return err
		}
		n, err := s.store.Create(c.Request().Context(), title, body)
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/api/notes/"+strconv.FormatInt(n.ID, 10))
		return c.JSON(http.StatusCreated, created{ID: n.ID})
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
		return c.JSON(http.StatusOK, toJSON(n))
	}
}

func (s *server) handlePatchNote() echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c)
		if err != nil {
			return err
		}
		var req noteRequest
		if err := s.decodeJSON(c, &req); err != nil {
			return err
		}
		p := notes.Patch{Title: req.Title, Body: req.Body}
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
		return c.JSON(http.StatusOK, toJSON(n))
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
