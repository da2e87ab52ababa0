#pragma once
// The back-end's OWA-like mailbox API. The HTTP server authenticates the connection or request
// (NTLM, Negotiate) and calls handle() with the parsed request and the identity it established;
// this class routes, authorizes, runs the operation on the store, writes the audit line and
// returns the response. It has no sockets and never throws on the request path.
//
// Routes (<M> is a user name; <F> is Inbox or Sent; Sent is the "Sent Items" folder):
//
//   GET    /exchweb/<page>[?size=N]    anonymous static content, not audited
//   GET    /exchange/                  list the identity's Inbox        (implicit mailbox)
//   GET    /exchange/<F>/              list the identity's folder
//   GET    /exchange/<F>/<id>          read a message of the identity's
//   DELETE /exchange/<F>/<id>          delete it
//   POST   /exchange/Outbox/           send as the identity
//   GET    /exchange/<M>/              list M's Inbox                   (explicit mailbox)
//   GET    /exchange/<M>/<F>/          list M's folder
//   GET    /exchange/<M>/<F>/<id>      read
//   DELETE /exchange/<M>/<F>/<id>      delete
//   POST   /exchange/<M>/Outbox/       send as M
//   (the trailing slash of a collection is optional; list takes ?limit=N, 1..500, default 50)
//
// The implicit mailbox is the one that leaks under MS04-002: it is whoever the connection is
// authenticated as. An explicit mailbox is authorized (MS02-011: authentication is not
// authorization): the identity must be M or one of M's delegates, else 403. Folder names are
// capitalised and user names are lower-case, so the two never collide.
//
// Every response to an authenticated request (all but /exchweb/) carries X-Exsim-Identity and,
// once the mailbox is known, X-Exsim-Mailbox (the mailbox served, touched or addressed), and
// writes one audit line. Checks run in this order: 400 non-canonical path, /exchweb/, 401 no
// identity, 404 route, 405 method (with Allow), 404 mailbox unknown or not on this back-end,
// 403 not the owner nor a delegate, 404 message id of another mailbox, then the operation
// (404 no such message, 503 store busy, 500 store error).

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/backend_sim/mailbox_store.hpp"
#include "exsim/common/html.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::backend {

struct request_context {
    std::string identity;             // authenticated user ("alice"); empty = anonymous
    std::string mechanism;            // "kerberos", "ntlm" or "" (for the audit line)
    std::uint64_t connection_id = 0;  // the back-end connection, for the audit line
    bool fresh_auth = false;          // this request carried the token that authenticated it
};

struct api_limits {
    std::size_t default_list = 50;           // messages per list without ?limit=
    std::size_t max_list = 500;              // largest ?limit= accepted
    std::size_t max_subject = 1024;          // bytes
    std::size_t max_body = 256 * 1024;       // bytes
    std::size_t max_static = 1024 * 1024;    // ?size= is capped to this
};

class mailbox_api {
public:
    using request = boost::beast::http::request<boost::beast::http::string_body>;
    using response = boost::beast::http::response<boost::beast::http::string_body>;

    // Keeps a copy of what it needs from `topo` (users, homes, delegates); `store` (this
    // thread's) and `audit` (shared) must outlive the API object. One object per worker thread.
    mailbox_api(const common::topology& topo, std::string backend_name, mailbox_store& store,
                audit_log& audit, api_limits limits = {});

    // Never throws for anything a client can send. Sets version, Content-Type, Server and the
    // payload; keep-alive is left to the server.
    response handle(const request& req, const request_context& ctx);

    const std::string& backend_name() const noexcept { return backend_; }

private:
    struct mailbox_info {
        std::string home;
        std::vector<std::string> delegates;
    };
    struct call;  // one request in progress (defined in the .cpp)

    const mailbox_info* find_mailbox(std::string_view name) const;
    bool may_open(std::string_view identity, std::string_view mailbox) const;

    response handle_static(call& c);
    response handle_mailbox(call& c);
    response do_list(call& c);
    response do_read(call& c);
    response do_delete(call& c);
    response do_send(call& c);
    response finish(call& c, response res);

    std::map<std::string, mailbox_info, std::less<>> mailboxes_;
    std::string backend_;
    mailbox_store& store_;
    audit_log& audit_;
    api_limits limits_;
};

using common::html_escape;  // exsim/common/html.hpp

// True when the Accept header rates text/html above application/json (q-values, wildcards);
// on a tie (e.g. "*/*" or no header) JSON wins.
bool prefers_html(std::string_view accept);

}  // namespace exsim::backend
