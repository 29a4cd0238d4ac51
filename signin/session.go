package signin

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// startSession ends a sign-in of any protocol: who gets a session cookie
// of the configured lifetime, and the browser goes back to rd (checked
// again: a binding is ours, but the rule is the rule).
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, who *extauthz.Session, rd string) {
	now := h.cfg.Now()
	who.IssuedAt, who.Expiry = now.Unix(), now.Add(h.cfg.Lifetime).Unix()
	sealed, err := h.cfg.Keys.SealSession(*who)
	if err != nil {
		h.fail(w, "sealing the session", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: extauthz.SessionCookieName(scheme(r)), Value: sealed, Path: "/", MaxAge: int(h.cfg.Lifetime.Seconds()),
		HttpOnly: true, Secure: scheme(r) == "https", SameSite: http.SameSiteLaxMode})
	h.cfg.Log.Info("signed in", "issuer", who.Issuer, "sub", truncate(who.Subject, 100), "method", who.Method)
	rd, err = ReturnURL(rd, r.Host, h.cfg.ReturnHosts)
	if err != nil {
		rd = "/"
	}
	http.Redirect(w, r, rd, http.StatusFound)
}
