"""The SIP redirect interface: any SIP server, SBC or PBX consults callwarden with no module.

The SIP server forks (or sends) the initial INVITE of a call here over UDP or TCP and acts on
the answer: `302 Moved Temporarily` back to the original destination admits the call, with its
maximum duration in `X-Callwarden-Max-Duration`; a refusal (403, 484, 486, 503, or 603 when so
configured) carries the clauses behind it in a Reason header. docs/integrations/sip-redirect.md
lists every header in and out.

Call ends: a redirect server takes no part in the call afterwards and never sees its BYE. The
concurrency leases an admitted call holds are released when the SIP server reports the end
through the call-event API (`POST /v1/admission/calls/{call_id}/events`), or otherwise expire
after the call's maximum duration plus `lease_grace_s`.
"""

from callwarden.adapters.sip.handler import RedirectConfig, RedirectHandler, SipStats
from callwarden.adapters.sip.transport import SipEndpoint, run_sip, serve_sip

__all__ = ["RedirectConfig", "RedirectHandler", "SipEndpoint", "SipStats", "run_sip", "serve_sip"]
