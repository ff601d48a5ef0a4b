package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/notes-stack/notes/service/internal/notes"
)

// WriteAuth says which writes need an API token (Authorization: Bearer).
type WriteAuth string

const (
	// WriteAuthModify (the default, also for "") protects PATCH and DELETE;
	// GET and POST stay open, as with the Flask API.
	WriteAuthModify WriteAuth = "modify"
	// WriteAuthAll protects POST too.
	WriteAuthAll WriteAuth = "all"
	// WriteAuthNone protects nothing: an explicit opt-out.
	WriteAuthNone WriteAuth = "none"
)

// Tokens are the API tokens that authorise protected writes.
type Tokens struct {
	// hashes of the tokens: comparing fixed-size digests in constant time
	// reveals neither a token's bytes nor its length through timing.
	hashes [][sha256.Size]byte
}

// NewTokens returns the set of tokens; with none, no request is authorised.
func NewTokens(tokens []string) *Tokens {
	t := &Tokens{}
	for _, tok := range tokens {
		t.hashes = append(t.hashes, sha256.Sum256([]byte(tok)))
	}
	return t
}

// valid compares token with every known token, without stopping early.
func (t *Tokens) valid(token string) bool {
	if t == nil {
		return false
	}
	h := sha256.Sum256([]byte(token))
	ok := 0
	for i := range t.hashes {
		ok |= subtle.ConstantTimeCompare(h[:], t.hashes[i][:])
	}
	return ok == 1
}

// requireToken answers 401 problem+json with WWW-Authenticate (RFC 6750)
// unless the request carries exactly one "Authorization: Bearer <token>"
// with a known token.
func (s *server) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		values := c.Request().Header.Values(echo.HeaderAuthorization)
		if len(values) == 0 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="notes"`)
			return notes.Errorf(notes.EUNAUTHORIZED, "this request needs an API token: send Authorization: Bearer <token>")
		}
		scheme, token, _ := strings.Cut(values[0], " ")
		token = strings.TrimLeft(token, " ")
		if len(values) > 1 || !strings.EqualFold(scheme, "Bearer") || token == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="notes", error="invalid_request"`)
			return notes.Errorf(notes.EUNAUTHORIZED, "send one Authorization header: Bearer <token>")
		}
		if !s.tokens.valid(token) {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="notes", error="invalid_token"`)
			return notes.Errorf(notes.EUNAUTHORIZED, "the API token is not valid")
		}
		return next(c)
	}
}

// protect returns requireToken when required, else nothing.
func (s *server) protect(required bool) []echo.MiddlewareFunc {
	if !required {
		return nil
	}
	return []echo.MiddlewareFunc{s.requireToken}
}
