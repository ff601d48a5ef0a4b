package httpapi

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes lists the whole API.
func (s *server) addRoutes(e *echo.Echo) {
	modify := s.protect(s.writeAuth != WriteAuthNone)
	create := s.protect(s.writeAuth == WriteAuthAll)

	e.GET("/", s.handleHello())
	e.GET("/healthz", s.handleHealthz())
	e.GET("/readyz", s.handleReadyz())
	e.GET("/startedz", s.handleStartedz())
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})))

	e.GET("/api/notes", s.handleListNotes())
	e.POST("/api/notes", s.handleCreateNote(), create...)
	e.GET("/api/notes/:id", s.handleGetNote())
	e.PATCH("/api/notes/:id", s.handlePatchNote(), modify...)
	e.DELETE("/api/notes/:id", s.handleDeleteNote(), modify...)
}
