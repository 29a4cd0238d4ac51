package signin

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/internal/clip"
)

// startSession ends a sign-in of any protocol: who gets a session cookie
// of the configured lifetime (kept by the browser for signin.renew_grace
// more), and the browser goes back to rd (checked
// again: a binding is ours, but the rule is the rule).
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, who *extauthz.Session, rd string) {
	now := h.cfg.Now()
	who.IssuedAt, who.Expiry = now.Unix(), now.Add(h.cfg.Lifetime).Unix()
	sealed, err := h.cfg.Keys.SealSession(*who)
	if err != nil {
		h.fail(w, "sealing the session", err)
		return
	}
	// The browser keeps the cookie for the grace after the session's end:
	// a navigation then is renewed (Check honours it for nothing else).
	w.Header().Add("Set-Cookie", h.cfg.Cookie.Set(scheme(r), sealed, h.cfg.Lifetime+h.cfg.RenewGrace))
	h.cfg.Log.Info("signed in", "issuer", who.Issuer, "sub", clip.String(who.Subject, 100), "method", who.Method)
	rd, err = ReturnURL(rd, r.Host, h.cfg.ReturnHosts)
	if err != nil {
		rd = "/"
	}
	http.Redirect(w, r, rd, http.StatusFound)
}
