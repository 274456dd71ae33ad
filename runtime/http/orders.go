package http

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

func (s *Server) routeOrders(r chi.Router) {
	r.Post("/orders", s.createOrder)
	r.Get("/orders", s.listOrders)
	r.Get("/orders/{id}", s.getOrder)
	r.Post("/orders/{id}/cancel", s.cancelOrder)
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) {
	var req oms.OrderRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	o, replayed, err := storeOf(r).CreateOrder(r.Context(), r.Header.Get("Idempotency-Key"), &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if replayed {
		// The same response as the first time, marked as a replay.
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		s.m.OrdersCreated.Inc()
	}
	writeJSON(w, http.StatusCreated, o)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	o, err := storeOf(r).Order(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 1, maxLimitParam)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := oms.OrderFilter{Status: r.URL.Query().Get("status"), Cursor: r.URL.Query().Get("cursor"), Limit: int(limit)}
	page, err := storeOf(r).Orders(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > 0 {
		var empty struct{}
		if err := s.decode(w, r, &empty); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	o, err := storeOf(r).CancelOrder(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}
