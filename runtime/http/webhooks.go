package http

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/webhook"
)

func (s *Server) routeWebhooks(r chi.Router) {
	r.Get("/webhooks", s.listWebhooks)
	r.Put("/webhooks/{name}", s.putWebhook)
	r.Get("/webhooks/{name}", s.getWebhook)
	r.Delete("/webhooks/{name}", s.deleteWebhook)
	r.Get("/webhooks/{name}/deliveries", s.webhookDeliveries)
	r.Post("/webhooks/{name}/deliveries/{id}/redeliver", s.redeliver)
}

func (s *Server) putWebhook(w http.ResponseWriter, r *http.Request) {
	var in oms.WebhookInput
	if err := s.decode(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := in.Validate(); err != nil { // before resolving anything
		s.fail(w, r, err)
		return
	}
	if err := webhook.CheckURL(r.Context(), in.URL, s.opts.DenyPrivateWebhooks); err != nil {
		s.fail(w, r, err)
		return
	}
	wh, created, err := storeOf(r).PutWebhook(r.Context(), chi.URLParam(r, "name"), &in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writePut(w, created, wh)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	ws, err := storeOf(r).Webhooks(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ws == nil {
		ws = []*oms.Webhook{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": ws})
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	wh, err := storeOf(r).Webhook(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wh)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := storeOf(r).DeleteWebhook(r.Context(), chi.URLParam(r, "name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 1, maxLimitParam)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := oms.DeliveryFilter{Status: r.URL.Query().Get("status"), Limit: int(limit)}
	ds, err := storeOf(r).WebhookDeliveries(r.Context(), chi.URLParam(r, "name"), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ds == nil {
		ds = []*oms.WebhookDelivery{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
}

func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) {
	d, err := storeOf(r).Redeliver(r.Context(), chi.URLParam(r, "name"), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, d)
}
