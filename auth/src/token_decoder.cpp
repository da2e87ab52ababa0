// Token decoder: NTLMSSP (MS-NLMP 2.2.1), SPNEGO (RFC 4178) and the outer frame of Kerberos
// GSS-API tokens (RFC 4121 4.1). Every read goes through a bounds check on an absolute offset
// into the caller's span, so error offsets point into the token the caller holds.

#include "exsim/auth/token_decoder.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

namespace exsim::auth {
namespace {

using bytes_view = std::span<const std::uint8_t>;

decode_error fail(std::string what, std::size_t offset) {
    return decode_error{std::move(what), offset};
}

std::uint16_t le16(bytes_view in, std::size_t pos) {
    return static_cast<std::uint16_t>(in[pos] | (in[pos + 1] << 8));
}

std::uint32_t le32(bytes_view in, std::size_t pos) {
    return static_cast<std::uint32_t>(in[pos]) | (static_cast<std::uint32_t>(in[pos + 1]) << 8) |
           (static_cast<std::uint32_t>(in[pos + 2]) << 16) |
           (static_cast<std::uint32_t>(in[pos + 3]) << 24);
}

std::string hex32(std::uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

// ---------------------------------------------------------------------------------------------
// Text

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// UTF-16LE to UTF-8. An unpaired surrogate becomes U+FFFD and sets `replaced`: the trace keeps
// showing the rest of the name, and find_ntlm_authenticate can refuse names that were altered.
// The caller has checked that the length is even.
std::string utf16le_to_utf8(bytes_view s, bool& replaced) {
    std::string out;
    out.reserve(s.size() / 2);
    const std::size_t units = s.size() / 2;
    for (std::size_t i = 0; i < units; ++i) {
        const std::uint32_t u = le16(s, 2 * i);
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units) {
            const std::uint32_t lo = le16(s, 2 * (i + 1));
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                append_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                ++i;
                continue;
            }
        }
        if (u >= 0xD800 && u <= 0xDFFF) {
            append_utf8(out, 0xFFFD);
            replaced = true;
            continue;
        }
        append_utf8(out, u);
    }
    return out;
}

// OEM strings are read as Latin-1: the real OEM code page is the client's, unknown here, and
// Latin-1 maps every byte to exactly one character, so nothing is lost or invalid.
std::string latin1_to_utf8(bytes_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::uint8_t b : s) append_utf8(out, b);
    return out;
}

bool has_control_char(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b < 0x20 || b == 0x7F;
    });
}

// Names go into a one-line trace: escape what could break or forge the line.
std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        const auto b = static_cast<unsigned char>(c);
        if (b < 0x20 || b == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", b);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// NTLMSSP

constexpr std::array<std::uint8_t, 8> ntlm_signature{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};

struct flag_info {
    std::uint32_t bit;
    const char* name;   // MS-NLMP constant name
    const char* brief;  // short form for traces
};

constexpr std::array<flag_info, 22> ntlm_flags{{
    {ntlm_flag::negotiate_unicode, "NTLMSSP_NEGOTIATE_UNICODE", "UNICODE"},
    {ntlm_flag::negotiate_oem, "NTLM_NEGOTIATE_OEM", "OEM"},
    {ntlm_flag::request_target, "NTLMSSP_REQUEST_TARGET", "REQUEST_TARGET"},
    {ntlm_flag::negotiate_sign, "NTLMSSP_NEGOTIATE_SIGN", "SIGN"},
    {ntlm_flag::negotiate_seal, "NTLMSSP_NEGOTIATE_SEAL", "SEAL"},
    {ntlm_flag::negotiate_datagram, "NTLMSSP_NEGOTIATE_DATAGRAM", "DATAGRAM"},
    {ntlm_flag::negotiate_lm_key, "NTLMSSP_NEGOTIATE_LM_KEY", "LM_KEY"},
    {ntlm_flag::negotiate_ntlm, "NTLMSSP_NEGOTIATE_NTLM", "NTLM"},
    {ntlm_flag::negotiate_anonymous, "NTLMSSP_NEGOTIATE_ANONYMOUS", "ANONYMOUS"},
    {ntlm_flag::negotiate_oem_domain_supplied, "NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED",
     "OEM_DOMAIN_SUPPLIED"},
    {ntlm_flag::negotiate_oem_workstation_supplied, "NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED",
     "OEM_WORKSTATION_SUPPLIED"},
    {ntlm_flag::negotiate_always_sign, "NTLMSSP_NEGOTIATE_ALWAYS_SIGN", "ALWAYS_SIGN"},
    {ntlm_flag::target_type_domain, "NTLMSSP_TARGET_TYPE_DOMAIN", "TARGET_TYPE_DOMAIN"},
    {ntlm_flag::target_type_server, "NTLMSSP_TARGET_TYPE_SERVER", "TARGET_TYPE_SERVER"},
    {ntlm_flag::negotiate_extended_sessionsecurity, "NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY",
     "EXTENDED_SESSIONSECURITY"},
    {ntlm_flag::negotiate_identify, "NTLMSSP_NEGOTIATE_IDENTIFY", "IDENTIFY"},
    {ntlm_flag::request_non_nt_session_key, "NTLMSSP_REQUEST_NON_NT_SESSION_KEY",
     "REQUEST_NON_NT_SESSION_KEY"},
    {ntlm_flag::negotiate_target_info, "NTLMSSP_NEGOTIATE_TARGET_INFO", "TARGET_INFO"},
    {ntlm_flag::negotiate_version, "NTLMSSP_NEGOTIATE_VERSION", "VERSION"},
    {ntlm_flag::negotiate_128, "NTLMSSP_NEGOTIATE_128", "128"},
    {ntlm_flag::negotiate_key_exch, "NTLMSSP_NEGOTIATE_KEY_EXCH", "KEY_EXCH"},
    {ntlm_flag::negotiate_56, "NTLMSSP_NEGOTIATE_56", "56"},
}};

const flag_info* find_flag(std::uint32_t bit) {
    for (const auto& f : ntlm_flags)
        if (f.bit == bit) return &f;
    return nullptr;
}

std::vector<std::string> flag_names(std::uint32_t flags) {
    std::vector<std::string> names;
    for (int i = 0; i < 32; ++i) {
        const std::uint32_t bit = std::uint32_t{1} << i;
        if (!(flags & bit)) continue;
        const flag_info* f = find_flag(bit);
        names.emplace_back(f ? std::string(f->name) : hex32(bit));
    }
    return names;
}

// A security buffer (Len 2, MaxLen 2, Offset 4) read from the fixed header. MaxLen is ignored, as
// MS-NLMP says receivers must; Offset is only meaningful when Len > 0 (clients put 0 or anything
// there for empty fields).
struct ntlm_field {
    const char* name;
    std::size_t descriptor_at;  // absolute offset of the descriptor
    std::uint16_t length;
    std::uint32_t offset;
};

ntlm_field read_field(bytes_view msg, std::size_t at, const char* name) {
    return ntlm_field{name, at, le16(msg, at), le32(msg, at + 4)};
}

// The payload bytes of a field, or an error if they do not lie inside the message. Offsets in the
// field are relative to the start of the message; `base` makes the error offset absolute.
decode_result<bytes_view> field_bytes(bytes_view msg, const ntlm_field& f, std::size_t base) {
    if (f.length == 0) return bytes_view{};
    // Computed in 64 bits, so neither check can wrap; the 32-bit overflow gets its own message
    // because it is a hostile pattern worth naming in a trace.
    const std::uint64_t end = std::uint64_t{f.offset} + f.length;
    if (end > 0xFFFFFFFFull)
        return fail(std::string(f.name) + " field offset+length overflows 32 bits (offset " +
                        std::to_string(f.offset) + ", length " + std::to_string(f.length) + ")",
                    base + f.descriptor_at);
    if (end > msg.size())
        return fail(std::string(f.name) + " field runs past the end of the message (offset " +
                        std::to_string(f.offset) + ", length " + std::to_string(f.length) +
                        ", message " + std::to_string(msg.size()) + " bytes)",
                    base + f.descriptor_at);
    return msg.subspan(f.offset, f.length);
}

// A string field, decoded to UTF-8 with the message's encoding.
decode_result<std::string> field_string(bytes_view msg, const ntlm_field& f, bool unicode,
                                        std::size_t base, bool& replaced) {
    auto b = field_bytes(msg, f, base);
    if (!b) return b.error();
    if (!unicode) return latin1_to_utf8(*b);
    if (b->size() % 2 != 0)
        return fail(std::string(f.name) + " field has an odd length (" +
                        std::to_string(b->size()) + ") for UTF-16",
                    base + f.descriptor_at);
    return utf16le_to_utf8(*b, replaced);
}

// One NTLM message being read: its bytes, where they start in the caller's input (`base`,
// non-zero inside SPNEGO) and whether any UTF-16 had to be replaced on the way.
struct ntlm_reader {
    bytes_view msg;
    std::size_t base;
    bool replaced = false;

    // The string field whose descriptor is at `at`, into `out`.
    std::optional<decode_error> read_string(std::size_t at, const char* name, bool unicode,
                                            std::string& out) {
        auto s = field_string(msg, read_field(msg, at, name), unicode, base, replaced);
        if (!s) return s.error();
        out = std::move(s).value();
        return std::nullopt;
    }

    // A field the trace does not show, whose bytes must still lie inside the message.
    std::optional<decode_error> check_bounds(std::size_t at, const char* name) const {
        auto b = field_bytes(msg, read_field(msg, at, name), base);
        if (!b) return b.error();
        return std::nullopt;
    }

    decode_error truncated(const char* header) const {
        return fail("truncated " + std::string(header) + " header (" +
                        std::to_string(msg.size()) + " bytes)",
                    base);
    }
};

// NEGOTIATE: Signature, MessageType, NegotiateFlags (16 bytes), then DomainNameFields and
// WorkstationFields (32 bytes), then an optional Version. curl sends exactly 32 bytes; very
// old clients sent only the first 16, with no fields at all.
std::optional<decode_error> parse_ntlm_negotiate(ntlm_reader& r, ntlm_message& m) {
    const std::size_t size = r.msg.size();
    if (size < 16 || (size < 32 && size != 16)) return r.truncated("NEGOTIATE");
    m.flags = le32(r.msg, 12);
    constexpr std::uint32_t supplied = ntlm_flag::negotiate_oem_domain_supplied |
                                       ntlm_flag::negotiate_oem_workstation_supplied;
    if (size == 16) {
        if (m.flags & supplied)
            return fail("NEGOTIATE says a domain or workstation is supplied but has no fields",
                        r.base + 12);
        return std::nullopt;
    }
    // Both strings are OEM whatever the UNICODE flag says (MS-NLMP 2.2.1.1), and are only
    // there when the matching flag is set; otherwise the fields must be ignored.
    if (m.flags & ntlm_flag::negotiate_oem_domain_supplied)
        if (auto e = r.read_string(16, "DomainName", false, m.domain)) return e;
    if (m.flags & ntlm_flag::negotiate_oem_workstation_supplied)
        if (auto e = r.read_string(24, "Workstation", false, m.workstation)) return e;
    return std::nullopt;
}

// CHALLENGE: TargetNameFields at 12, flags at 20, ServerChallenge 24..32, Reserved 32..40,
// TargetInfoFields at 40, Version at 48. The oldest servers stopped after the challenge.
std::optional<decode_error> parse_ntlm_challenge(ntlm_reader& r, ntlm_message& m) {
    if (r.msg.size() < 32) return r.truncated("CHALLENGE");
    m.flags = le32(r.msg, 20);
    const bool unicode = m.flags & ntlm_flag::negotiate_unicode;
    const bool has_target_info = m.flags & ntlm_flag::negotiate_target_info;
    // The whole fixed header first, so that a short message is reported as such.
    if (has_target_info && r.msg.size() < 48)
        return fail("truncated CHALLENGE header: TARGET_INFO set but no TargetInfo field",
                    r.base + r.msg.size());
    if (auto e = r.read_string(12, "TargetName", unicode, m.domain)) return e;
    if (has_target_info) return r.check_bounds(40, "TargetInfo");
    return std::nullopt;
}

// AUTHENTICATE: six fields (LM, NT, domain, user, workstation, session key) from 12 to
// 60, then NegotiateFlags at 60. Messages without the flags predate NTLMv2 and are not
// sent by any client this simulator meets.
std::optional<decode_error> parse_ntlm_authenticate(ntlm_reader& r, ntlm_message& m) {
    if (r.msg.size() < 64) return r.truncated("AUTHENTICATE");
    m.flags = le32(r.msg, 60);
    const bool unicode = m.flags & ntlm_flag::negotiate_unicode;
    if (auto e = r.check_bounds(12, "LmChallengeResponse")) return e;
    if (auto e = r.check_bounds(20, "NtChallengeResponse")) return e;
    if (auto e = r.read_string(28, "DomainName", unicode, m.domain)) return e;
    if (auto e = r.read_string(36, "UserName", unicode, m.user)) return e;
    if (auto e = r.read_string(44, "Workstation", unicode, m.workstation)) return e;
    return r.check_bounds(52, "EncryptedRandomSessionKey");
}

// `base` is where `msg` starts in the caller's input (non-zero inside SPNEGO).
decode_result<ntlm_message> parse_ntlm(bytes_view msg, std::size_t base) {
    const std::size_t sig_len = std::min(msg.size(), ntlm_signature.size());
    if (msg.empty()) return fail("empty token", base);
    if (!std::equal(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(sig_len),
                    ntlm_signature.begin()))
        return fail("bad NTLMSSP signature", base);
    if (msg.size() < 12) return ntlm_reader{msg, base}.truncated("NTLMSSP");

    ntlm_message m;
    ntlm_reader r{msg, base};
    const std::uint32_t type = le32(msg, 8);
    std::optional<decode_error> e;
    switch (type) {
    case 1: e = parse_ntlm_negotiate(r, m); break;
    case 2: e = parse_ntlm_challenge(r, m); break;
    case 3: e = parse_ntlm_authenticate(r, m); break;
    default: return fail("unknown NTLM message type " + std::to_string(type), base + 8);
    }
    if (e) return *e;
    m.type = static_cast<int>(type);
    m.flag_names = flag_names(m.flags);
    m.invalid_utf16_replaced = r.replaced;
    return m;
}

bool starts_with_ntlm_signature(bytes_view b) {
    return b.size() >= ntlm_signature.size() &&
           std::equal(ntlm_signature.begin(), ntlm_signature.end(), b.begin());
}

// ---------------------------------------------------------------------------------------------
// DER

// One TLV; all positions absolute in the input.
struct tlv {
    std::uint8_t tag = 0;
    std::size_t start = 0;    // first byte of the tag
    std::size_t content = 0;  // first byte of the value
    std::size_t length = 0;
    std::size_t end() const { return content + length; }
    bool constructed() const { return tag & 0x20; }
};

// Reads the TLV header at `pos`; the element must end at or before `limit`. Only single-byte tags
// (every tag SPNEGO and the Kerberos frame use) and definite lengths of up to 4 bytes are
// accepted. Non-minimal length encodings are tolerated: some encoders emit them and they are
// unambiguous.
decode_result<tlv> read_tlv(bytes_view in, std::size_t pos, std::size_t limit) {
    if (pos >= limit) return fail("DER: truncated element", pos);
    tlv t;
    t.start = pos;
    t.tag = in[pos];
    if ((t.tag & 0x1F) == 0x1F) return fail("DER: multi-byte tags are not supported", pos);
    if (pos + 1 >= limit) return fail("DER: truncated length", pos + 1);
    const std::uint8_t first = in[pos + 1];
    std::size_t p = pos + 2;
    if (first < 0x80) {
        t.length = first;
    } else if (first == 0x80) {
        return fail("DER: indefinite length is not allowed", pos + 1);
    } else {
        const std::size_t n = first & 0x7F;
        if (n > 4) return fail("DER: length of " + std::to_string(n) + " bytes (at most 4)", pos + 1);
        if (limit - p < n) return fail("DER: truncated length", pos + 1);
        std::uint64_t len = 0;
        for (std::size_t i = 0; i < n; ++i) len = (len << 8) | in[p + i];
        p += n;
        t.length = static_cast<std::size_t>(len);
        if (len > limit - p)
            return fail("DER: length " + std::to_string(len) + " runs past the end (" +
                            std::to_string(limit - p) + " bytes left)",
                        pos + 1);
    }
    if (t.length > limit - p)
        return fail("DER: length " + std::to_string(t.length) + " runs past the end (" +
                        std::to_string(limit - p) + " bytes left)",
                    pos + 1);
    t.content = p;
    return t;
}

// Checks that [pos, limit) is a sequence of well-formed TLVs, recursively into constructed ones,
// no deeper than max_der_depth. Done once before interpreting a SPNEGO token, so that the
// interpretation below can trust the structure and the nesting limit holds for every branch,
// including fields the interpretation skips.
std::optional<decode_error> check_der_tree(bytes_view in, std::size_t pos, std::size_t limit,
                                           int depth) {
    while (pos < limit) {
        auto t = read_tlv(in, pos, limit);
        if (!t) return t.error();
        if (t->constructed() && t->length > 0) {
            if (depth + 1 > max_der_depth)
                return fail("DER nesting too deep (more than " + std::to_string(max_der_depth) +
                                " levels)",
                            t->start);
            if (auto e = check_der_tree(in, t->content, t->end(), depth + 1)) return e;
        }
        pos = t->end();
    }
    return std::nullopt;
}

// The elements inside a constructed TLV.
decode_result<std::vector<tlv>> children(bytes_view in, const tlv& parent) {
    std::vector<tlv> out;
    std::size_t pos = parent.content;
    while (pos < parent.end()) {
        auto t = read_tlv(in, pos, parent.end());
        if (!t) return t.error();
        pos = t->end();
        out.push_back(*t);
    }
    return out;
}

// The single element inside an explicit tag such as [2] in `mechToken [2] OCTET STRING`.
decode_result<tlv> explicit_inner(bytes_view in, const tlv& tagged, std::uint8_t want_tag,
                                  const char* what) {
    auto kids = children(in, tagged);
    if (!kids) return kids.error();
    if (kids->size() != 1 || (*kids)[0].tag != want_tag)
        return fail(std::string("SPNEGO: malformed ") + what, tagged.start);
    return (*kids)[0];
}

decode_result<std::string> oid_to_string(bytes_view in, const tlv& t) {
    if (t.tag != 0x06) return fail("DER: expected an OBJECT IDENTIFIER", t.start);
    if (t.length == 0) return fail("DER: empty OBJECT IDENTIFIER", t.start);
    std::string out;
    bool first_arc = true;
    std::uint64_t v = 0;
    bool arc_started = false;
    for (std::size_t i = t.content; i < t.end(); ++i) {
        const std::uint8_t b = in[i];
        // A leading 0x80 is a non-minimal encoding: another spelling of the same OID, which
        // GSS-API libraries (comparing bytes) would not recognise, so neither do we.
        if (!arc_started && b == 0x80) return fail("DER: non-minimal OID encoding", i);
        arc_started = true;
        if (v > (std::uint64_t{1} << 56)) return fail("DER: OID arc too large", i);
        v = (v << 7) | (b & 0x7F);
        if (b & 0x80) continue;
        if (first_arc) {
            const std::uint64_t top = v < 40 ? 0 : v < 80 ? 1 : 2;
            out = std::to_string(top) + "." + std::to_string(v - 40 * top);
            first_arc = false;
        } else {
            out += "." + std::to_string(v);
        }
        v = 0;
        arc_started = false;
    }
    if (arc_started) return fail("DER: truncated OBJECT IDENTIFIER", t.end() - 1);
    return out;
}

constexpr std::string_view oid_spnego = "1.3.6.1.5.5.2";
constexpr std::string_view oid_krb5 = "1.2.840.113554.1.2.2";
constexpr std::string_view oid_ms_krb5 = "1.2.840.48018.1.2.2";
constexpr std::string_view oid_krb5_u2u = "1.2.840.113554.1.2.2.3";
constexpr std::string_view oid_ntlmssp = "1.3.6.1.4.1.311.2.2.10";
constexpr std::string_view oid_negoex = "1.3.6.1.4.1.311.2.2.30";

bool is_kerberos_oid(std::string_view oid) {
    return oid == oid_krb5 || oid == oid_ms_krb5 || oid == oid_krb5_u2u;
}

// ---------------------------------------------------------------------------------------------
// Kerberos (outer frame only)

std::string kerberos_kind_of_tag(std::uint8_t tag) {
    switch (tag) {
    case 0x6E: return "AP-REQ";     // [APPLICATION 14]
    case 0x6F: return "AP-REP";     // [APPLICATION 15]
    case 0x7E: return "KRB-ERROR";  // [APPLICATION 30]
    default: return "";
    }
}

// After the krb5 OID of a GSS token: TOK_ID (2 bytes, RFC 4121 4.1) then the Kerberos message.
// `pos`..`limit` is that remainder. The message's own tag is preferred to TOK_ID when both are
// there, because it is what the acceptor will actually parse.
decode_result<std::string> kerberos_kind_after_oid(bytes_view in, std::size_t pos,
                                                   std::size_t limit) {
    if (limit - pos < 2) return fail("Kerberos GSS token: truncated TOK_ID", pos);
    const unsigned tok_id = (in[pos] << 8) | in[pos + 1];
    std::string kind = tok_id == 0x0100   ? "AP-REQ"
                       : tok_id == 0x0200 ? "AP-REP"
                       : tok_id == 0x0300 ? "KRB-ERROR"
                                          : "";
    pos += 2;
    if (pos < limit) {
        auto inner = read_tlv(in, pos, limit);
        if (!inner) return inner.error();
        if (auto k = kerberos_kind_of_tag(inner->tag); !k.empty()) kind = k;
    }
    return kind;
}

// ---------------------------------------------------------------------------------------------
// Token dispatch

decode_result<decoded_token> decode_at(bytes_view in, std::size_t pos, std::size_t limit,
                                       bool inside_spnego);

// Fills the inner_* fields from a mechToken/responseToken occupying [pos, limit).
std::optional<decode_error> decode_inner(bytes_view in, std::size_t pos, std::size_t limit,
                                         decoded_token& out) {
    out.inner_token_size = limit - pos;
    if (pos == limit) return std::nullopt;
    const bytes_view token = in.subspan(pos, limit - pos);
    const std::uint8_t first = token[0];
    const bool known = starts_with_ntlm_signature(token) || first == 0x60 || first == 0x6E ||
                       first == 0x6F || first == 0x7E;
    if (!known) {
        // NegoEx or another mechanism: report it rather than fail, the trace still has value.
        out.inner_mechanism = "unknown";
        return std::nullopt;
    }
    auto inner = decode_at(in, pos, limit, true);
    if (!inner) return inner.error();
    out.inner_mechanism = inner->mechanism;
    out.kerberos_kind = inner->kerberos_kind;
    out.ntlm = std::move(inner->ntlm);
    return std::nullopt;
}

// Context tags inside NegTokenInit/NegTokenResp must be explicit ([n] constructed) and strictly
// increasing: DER SEQUENCE order. Refusing duplicates matters because a decoder that picked a
// different duplicate than the GSS-API library would show (or act on) a token nobody accepted.
std::optional<decode_error> check_context_tag(const tlv& f, int& last_tag_number) {
    if ((f.tag & 0xE0) != 0xA0)
        return fail("SPNEGO: unexpected element in sequence (tag " + std::to_string(f.tag) + ")",
                    f.start);
    const int n = f.tag & 0x1F;
    if (n <= last_tag_number) return fail("SPNEGO: fields duplicated or out of order", f.start);
    last_tag_number = n;
    return std::nullopt;
}

// The skeleton both SPNEGO messages share: `tagged` holds a SEQUENCE of explicit context-tagged
// fields in DER order, each handed to `on_field` (which returns an error or nothing). `kind`
// names the message, in the result and in errors.
template <class OnField>
std::optional<decode_error> for_each_spnego_field(bytes_view in, const tlv& tagged,
                                                  const char* kind, decoded_token& out,
                                                  OnField on_field) {
    out.spnego_kind = kind;
    auto seq = explicit_inner(in, tagged, 0x30, kind);
    if (!seq) return seq.error();
    auto fields = children(in, *seq);
    if (!fields) return fields.error();
    int last = -1;
    for (const tlv& f : *fields) {
        if (auto e = check_context_tag(f, last)) return e;
        if (auto e = on_field(f)) return e;
    }
    return std::nullopt;
}

// mechToken / responseToken: [2] OCTET STRING holding the inner mechanism's token.
std::optional<decode_error> decode_token_field(bytes_view in, const tlv& f, const char* what,
                                               decoded_token& out) {
    auto token = explicit_inner(in, f, 0x04, what);
    if (!token) return token.error();
    return decode_inner(in, token->content, token->end(), out);
}

// mechTypes [0] SEQUENCE OF OBJECT IDENTIFIER, appended to out.offered_mechs by name.
std::optional<decode_error> parse_mech_types(bytes_view in, const tlv& f, decoded_token& out) {
    auto list = explicit_inner(in, f, 0x30, "mechTypes");
    if (!list) return list.error();
    auto oids = children(in, *list);
    if (!oids) return oids.error();
    for (const tlv& o : *oids) {
        auto s = oid_to_string(in, o);
        if (!s) return s.error();
        out.offered_mechs.push_back(mech_name(*s));
    }
    return std::nullopt;
}

// negState [0] ENUMERATED, named as RFC 4178 names its values.
std::optional<decode_error> parse_neg_state(bytes_view in, const tlv& f, decoded_token& out) {
    auto e = explicit_inner(in, f, 0x0A, "negState");
    if (!e) return e.error();
    if (e->length < 1 || e->length > 4) return fail("SPNEGO: malformed negState", e->start);
    std::uint32_t v = 0;
    for (std::size_t i = e->content; i < e->end(); ++i) v = (v << 8) | in[i];
    static constexpr std::array<const char*, 4> names{"accept-completed", "accept-incomplete",
                                                      "reject", "request-mic"};
    out.neg_state = v < names.size() ? names[v] : "unknown(" + std::to_string(v) + ")";
    return std::nullopt;
}

// supportedMech [1] OBJECT IDENTIFIER, by name.
std::optional<decode_error> parse_supported_mech(bytes_view in, const tlv& f,
                                                 decoded_token& out) {
    auto o = explicit_inner(in, f, 0x06, "supportedMech");
    if (!o) return o.error();
    auto s = oid_to_string(in, *o);
    if (!s) return s.error();
    out.chosen_mech = mech_name(*s);
    return std::nullopt;
}

// NegTokenInit ::= SEQUENCE { mechTypes [0], reqFlags [1], mechToken [2], mechListMIC [3] }.
// NegTokenInit2 (Microsoft) has negHints at [3] and the MIC at [4]; unknown fields are skipped.
std::optional<decode_error> parse_neg_token_init(bytes_view in, const tlv& tagged,
                                                 decoded_token& out) {
    return for_each_spnego_field(
        in, tagged, "negTokenInit", out, [&](const tlv& f) -> std::optional<decode_error> {
            switch (f.tag) {
            case 0xA0: return parse_mech_types(in, f, out);
            case 0xA2: return decode_token_field(in, f, "mechToken", out);
            case 0xA3:
            case 0xA4:
                // [3] is mechListMIC in RFC 4178, negHints in NegTokenInit2; [4] the latter's MIC.
                if (f.tag == 0xA4 || (f.length > 0 && in[f.content] == 0x04))
                    out.has_mech_list_mic = true;
                return std::nullopt;
            default: return std::nullopt;  // reqFlags and future extensions
            }
        });
}

// NegTokenResp ::= SEQUENCE { negState [0] ENUMERATED, supportedMech [1] OID,
//                             responseToken [2] OCTET STRING, mechListMIC [3] OCTET STRING }
std::optional<decode_error> parse_neg_token_resp(bytes_view in, const tlv& tagged,
                                                 decoded_token& out) {
    return for_each_spnego_field(
        in, tagged, "negTokenResp", out, [&](const tlv& f) -> std::optional<decode_error> {
            switch (f.tag) {
            case 0xA0: return parse_neg_state(in, f, out);
            case 0xA1: return parse_supported_mech(in, f, out);
            case 0xA2: return decode_token_field(in, f, "responseToken", out);
            case 0xA3: out.has_mech_list_mic = true; return std::nullopt;
            default: return std::nullopt;
            }
        });
}

// A NegotiationToken (the [0] or [1] CHOICE) occupying exactly [pos, limit).
std::optional<decode_error> parse_negotiation_token(bytes_view in, std::size_t pos,
                                                    std::size_t limit, int depth_used,
                                                    decoded_token& out) {
    auto t = read_tlv(in, pos, limit);
    if (!t) return t.error();
    if (t->end() != limit) return fail("SPNEGO: trailing bytes after the token", t->end());
    if (auto e = check_der_tree(in, pos, limit, depth_used)) return e;
    out.mechanism = "spnego";
    if (t->tag == 0xA0) return parse_neg_token_init(in, *t, out);
    if (t->tag == 0xA1) return parse_neg_token_resp(in, *t, out);
    return fail("SPNEGO: expected negTokenInit [0] or negTokenResp [1]", t->start);
}

decode_result<decoded_token> decode_at(bytes_view in, std::size_t pos, std::size_t limit,
                                       bool inside_spnego) {
    decoded_token out;
    const bytes_view token = in.subspan(pos, limit - pos);
    if (token.empty()) return fail("empty token", pos);
    const std::uint8_t first = token[0];

    if (first == 0x60) {
        // GSS-API InitialContextToken: [APPLICATION 0] { thisMech OID, innerContextToken }.
        auto app = read_tlv(in, pos, limit);
        if (!app) return app.error();
        if (app->end() != limit) return fail("GSS-API token: trailing bytes", app->end());
        auto oid_tlv = read_tlv(in, app->content, app->end());
        if (!oid_tlv) return oid_tlv.error();
        auto oid = oid_to_string(in, *oid_tlv);
        if (!oid) return oid.error();
        if (*oid == oid_spnego) {
            if (inside_spnego) return fail("SPNEGO nested inside SPNEGO", pos);
            if (auto e = parse_negotiation_token(in, oid_tlv->end(), app->end(), 1, out)) return *e;
            return out;
        }
        if (is_kerberos_oid(*oid)) {
            out.mechanism = "kerberos";
            auto kind = kerberos_kind_after_oid(in, oid_tlv->end(), app->end());
            if (!kind) return kind.error();
            out.kerberos_kind = std::move(kind).value();
            return out;
        }
        return fail("GSS-API token for an unsupported mechanism " + *oid, oid_tlv->start);
    }
    if (first == 0x6E || first == 0x6F || first == 0x7E) {
        // A raw Kerberos message (some clients send the AP-REQ without the GSS frame).
        auto t = read_tlv(in, pos, limit);
        if (!t) return t.error();
        if (t->end() != limit) return fail("Kerberos token: trailing bytes", t->end());
        out.mechanism = "kerberos";
        out.kerberos_kind = kerberos_kind_of_tag(first);
        return out;
    }
    if ((first == 0xA0 || first == 0xA1) && !inside_spnego) {
        // Servers send negTokenResp bare, without the GSS frame; some send negTokenInit bare too.
        if (auto e = parse_negotiation_token(in, pos, limit, 0, out)) return *e;
        return out;
    }
    if (first != 'N')
        return fail("unrecognised token (not NTLMSSP, SPNEGO or Kerberos: first byte " +
                        std::to_string(first) + ")",
                    pos);
    auto m = parse_ntlm(token, pos);
    if (!m) return m.error();
    out.mechanism = "ntlmssp";
    out.ntlm = std::move(m).value();
    return out;
}

const char* ntlm_type_name(int type) {
    switch (type) {
    case 1: return "NEGOTIATE";
    case 2: return "CHALLENGE";
    case 3: return "AUTHENTICATE";
    default: return "?";
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

decode_result<decoded_token> decode_token(std::span<const std::uint8_t> bytes) {
    if (bytes.size() > max_token_size)
        return fail("token too large (" + std::to_string(bytes.size()) + " bytes, limit " +
                        std::to_string(max_token_size) + ")",
                    max_token_size);
    if (bytes.empty()) return fail("empty token", 0);
    return decode_at(bytes, 0, bytes.size(), false);
}

decode_result<ntlm_message> decode_ntlm(std::span<const std::uint8_t> bytes) {
    if (bytes.size() > max_token_size)
        return fail("token too large (" + std::to_string(bytes.size()) + " bytes, limit " +
                        std::to_string(max_token_size) + ")",
                    max_token_size);
    return parse_ntlm(bytes, 0);
}

std::string describe_ntlm_flags(std::uint32_t flags) {
    std::string out;
    for (int i = 0; i < 32; ++i) {
        const std::uint32_t bit = std::uint32_t{1} << i;
        if (!(flags & bit)) continue;
        if (!out.empty()) out += '|';
        const flag_info* f = find_flag(bit);
        out += f ? std::string(f->brief) : hex32(bit);
    }
    return out.empty() ? "0" : out;
}

std::string describe(const ntlm_message& m) {
    std::string out = "NTLM ";
    out += ntlm_type_name(m.type);
    switch (m.type) {
    case 1:
        if (!m.domain.empty()) out += " domain=" + printable(m.domain);
        if (!m.workstation.empty()) out += " ws=" + printable(m.workstation);
        break;
    case 2:
        if (!m.domain.empty()) out += " target=" + printable(m.domain);
        break;
    case 3:
        out += " user=";
        if (m.user.empty()) {
            out += "(anonymous)";
        } else {
            if (!m.domain.empty()) out += printable(m.domain) + "\\";
            out += printable(m.user);
        }
        if (!m.workstation.empty()) out += " ws=" + printable(m.workstation);
        break;
    default:
        break;
    }
    out += " flags=" + describe_ntlm_flags(m.flags);
    if (m.invalid_utf16_replaced) out += " (invalid UTF-16 replaced)";
    return out;
}

std::string describe(const decoded_token& t) {
    auto inner = [&]() -> std::string {
        if (t.ntlm) return describe(*t.ntlm);
        if (t.mechanism == "kerberos" || t.inner_mechanism == "kerberos")
            return t.kerberos_kind.empty() ? "Kerberos" : "Kerberos " + t.kerberos_kind;
        return "";
    };
    if (t.mechanism != "spnego") return inner();

    std::string out = "SPNEGO " + t.spnego_kind;
    if (!t.neg_state.empty()) out += " " + t.neg_state;
    if (!t.offered_mechs.empty()) {
        out += " mechs=";
        for (std::size_t i = 0; i < t.offered_mechs.size(); ++i)
            out += (i ? "," : "") + t.offered_mechs[i];
    }
    if (!t.chosen_mech.empty()) out += " mech=" + t.chosen_mech;
    if (t.has_mech_list_mic) out += " mic";
    if (t.inner_mechanism.empty()) return out;
    if (t.inner_mechanism == "unknown")
        return out + ": unrecognised token (" + std::to_string(t.inner_token_size) + " bytes)";
    return out + ": " + inner();
}

bool acceptable_ntlm_names(const ntlm_message& m) {
    return !m.user.empty() && !m.invalid_utf16_replaced && !has_control_char(m.user) && !has_control_char(m.domain);
}

std::optional<ntlm_message> find_ntlm_authenticate(std::span<const std::uint8_t> bytes) {
    auto t = decode_token(bytes);
    if (!t || !t->ntlm || t->ntlm->type != 3 || !acceptable_ntlm_names(*t->ntlm)) return std::nullopt;
    return *t->ntlm;
}

std::string mech_name(std::string_view dotted_oid) {
    if (dotted_oid == oid_krb5) return "krb5";
    if (dotted_oid == oid_ms_krb5) return "ms-krb5";
    if (dotted_oid == oid_krb5_u2u) return "krb5-u2u";
    if (dotted_oid == oid_ntlmssp) return "ntlmssp";
    if (dotted_oid == oid_negoex) return "negoex";
    if (dotted_oid == oid_spnego) return "spnego";
    return std::string(dotted_oid);
}

}  // namespace exsim::auth
