package http

import (
	"math"
	"net/http"

	"github.com/go-chi/chi/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

func (s *Server) routeEvents(r chi.Router) {
	r.Get("/events", s.listEvents)
	r.Post("/events", s.postEvent)
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	after, err := intParam(r, "after", 0, math.MaxInt64)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", 1, maxLimitParam)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	events, err := storeOf(r).Events(r.Context(), oms.EventFilter{Entity: r.URL.Query().Get("entity"), After: after, Limit: int(limit)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if events == nil {
		events = []*oms.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events})
}

// postEvent accepts an external event (202): the worker applies it to the
// order or fulfilment through its workflow, and the event log shows each step.
func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) {
	var req oms.EventRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	e, replayed, err := storeOf(r).PostEvent(r.Context(), &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, e)
}
