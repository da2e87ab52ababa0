// Token decoder: real-shaped NTLMSSP, SPNEGO and Kerberos tokens built byte by byte, hostile
// inputs that must come back as errors, and a randomized mutation run (meant for ASan/UBSan).

#include "exsim/auth/token_decoder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ntlm_bytes.hpp"

namespace {

using exsim::auth::decode_ntlm;
using exsim::auth::decode_token;
using exsim::auth::describe;
using exsim::auth::find_ntlm_authenticate;
namespace flag = exsim::auth::ntlm_flag;

using bytes = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------------
// Builders

using exsim::testing::ntlm::ascii;
using exsim::testing::ntlm::cat;
using exsim::testing::ntlm::put16;
using exsim::testing::ntlm::put32;
using exsim::testing::ntlm::utf16le;
using ntlm_builder = exsim::testing::ntlm::builder;

const bytes windows_version{0x0A, 0x00, 0x61, 0x4A, 0x00, 0x00, 0x00, 0x0F};  // 10.0.19041, rev 15

// What curl --ntlm sends: 32 bytes, OEM, no Version, empty fields with offset 0.
constexpr std::uint32_t curl_flags = flag::negotiate_oem | flag::request_target |
                                     flag::negotiate_ntlm | flag::negotiate_always_sign |
                                     flag::negotiate_extended_sessionsecurity;
bytes curl_negotiate() { return ntlm_builder(1, 32).flags(12, curl_flags).msg; }

constexpr std::uint32_t windows_negotiate_flags =
    flag::negotiate_unicode | flag::negotiate_oem | flag::request_target | flag::negotiate_sign |
    flag::negotiate_seal | flag::negotiate_lm_key | flag::negotiate_ntlm |
    flag::negotiate_always_sign | flag::negotiate_extended_sessionsecurity |
    flag::negotiate_version | flag::negotiate_128 | flag::negotiate_key_exch | flag::negotiate_56;

// A Windows-style NEGOTIATE: 40 bytes, with Version, no payload.
bytes negotiate_with_version() {
    return ntlm_builder(1, 40).flags(12, windows_negotiate_flags).raw(32, windows_version).msg;
}

constexpr std::uint32_t challenge_flags =
    flag::negotiate_unicode | flag::request_target | flag::negotiate_ntlm |
    flag::negotiate_always_sign | flag::target_type_domain |
    flag::negotiate_extended_sessionsecurity | flag::negotiate_target_info |
    flag::negotiate_version | flag::negotiate_128 | flag::negotiate_56;

bytes av_pair(std::uint16_t id, const bytes& value) {
    bytes p(4, 0);
    put16(p, 0, id);
    put16(p, 2, static_cast<std::uint16_t>(value.size()));
    return cat({p, value});
}

bytes challenge() {
    const bytes target_info = cat({av_pair(2, utf16le(u"EXSIM")), av_pair(1, utf16le(u"BACKEND1")),
                                   av_pair(4, utf16le(u"exsim.test")), av_pair(0, {})});
    return ntlm_builder(2, 56)
        .flags(20, challenge_flags)
        .raw(24, {0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF})  // ServerChallenge
        .raw(48, windows_version)
        .field(12, utf16le(u"EXSIM"))
        .field(40, target_info)
        .msg;
}

constexpr std::uint32_t authenticate_flags =
    flag::negotiate_unicode | flag::request_target | flag::negotiate_ntlm |
    flag::negotiate_always_sign | flag::negotiate_extended_sessionsecurity |
    flag::negotiate_target_info | flag::negotiate_version | flag::negotiate_128 |
    flag::negotiate_key_exch | flag::negotiate_56;

// A Windows-style AUTHENTICATE: 88-byte header (Version and MIC), NTLMv2 response, UTF-16LE names.
bytes authenticate(std::u16string_view domain = u"EXSIM", std::u16string_view user = u"bob",
                   std::u16string_view workstation = u"WS1") {
    bytes nt_response(72);
    for (std::size_t i = 0; i < nt_response.size(); ++i)
        nt_response[i] = static_cast<std::uint8_t>(i * 7);
    return ntlm_builder(3, 88)
        .flags(60, authenticate_flags)
        .raw(64, windows_version)
        .field(12, bytes(24, 0))  // LmChallengeResponse: zeros under NTLMv2
        .field(20, nt_response)
        .field(28, utf16le(domain))
        .field(36, utf16le(user))
        .field(44, utf16le(workstation))
        .field(52, bytes(16, 0x5A))  // EncryptedRandomSessionKey
        .msg;
}

// DER: tag, definite length (short or long form), content.
bytes der(std::uint8_t tag, const bytes& content) {
    bytes out{tag};
    const std::size_t n = content.size();
    if (n < 0x80) {
        out.push_back(static_cast<std::uint8_t>(n));
    } else if (n < 0x100) {
        out.insert(out.end(), {0x81, static_cast<std::uint8_t>(n)});
    } else {
        out.insert(out.end(), {0x82, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)});
    }
    return cat({out, content});
}

const bytes oid_spnego{0x06, 0x06, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x02};
const bytes oid_krb5{0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x12, 0x01, 0x02, 0x02};
const bytes oid_ms_krb5{0x06, 0x09, 0x2A, 0x86, 0x48, 0x82, 0xF7, 0x12, 0x01, 0x02, 0x02};
const bytes oid_ntlmssp{0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0A};

// GSS-API InitialContextToken [APPLICATION 0] { SPNEGO, negTokenInit [0] SEQUENCE { mechTypes
// [0], mechToken [2] } }.
bytes neg_token_init(const std::vector<bytes>& mech_oids, const bytes& mech_token) {
    bytes oids;
    for (const auto& o : mech_oids) oids = cat({oids, o});
    bytes fields = der(0xA0, der(0x30, oids));
    if (!mech_token.empty()) fields = cat({fields, der(0xA2, der(0x04, mech_token))});
    return der(0x60, cat({oid_spnego, der(0xA0, der(0x30, fields))}));
}

// negTokenResp [1] SEQUENCE { negState [0], supportedMech [1], responseToken [2] }, bare as
// servers send it. negState < 0 leaves it out.
bytes neg_token_resp(int neg_state, const bytes& mech_oid, const bytes& response_token) {
    bytes fields;
    if (neg_state >= 0)
        fields = der(0xA0, der(0x0A, {static_cast<std::uint8_t>(neg_state)}));
    if (!mech_oid.empty()) fields = cat({fields, der(0xA1, mech_oid)});
    if (!response_token.empty()) fields = cat({fields, der(0xA2, der(0x04, response_token))});
    return der(0xA1, der(0x30, fields));
}

// A Kerberos AP-REQ of the right shape (contents are placeholders; nothing decrypts them).
bytes krb5_ap_req() {
    const bytes ticket = der(
        0x61, der(0x30, cat({der(0xA0, der(0x02, {5})), der(0xA1, der(0x1B, ascii("EXSIM.TEST"))),
                             der(0xA2, der(0x30, cat({der(0xA0, der(0x02, {2})),
                                                      der(0xA1, der(0x30, cat({der(0x1B, ascii("HTTP")),
                                                                               der(0x1B, ascii("backend1"))})))}))),
                             der(0xA3, der(0x30, cat({der(0xA0, der(0x02, {18})),
                                                      der(0xA2, der(0x04, bytes(40, 0xC3)))})))})));
    return der(0x6E, der(0x30, cat({der(0xA0, der(0x02, {5})), der(0xA1, der(0x02, {14})),
                                    der(0xA2, der(0x03, {0x00, 0x20, 0x00, 0x00, 0x00})),
                                    der(0xA3, ticket),
                                    der(0xA4, der(0x30, cat({der(0xA0, der(0x02, {18})),
                                                             der(0xA2, der(0x04, bytes(60, 0x77)))})))})));
}

// RFC 4121 framing: [APPLICATION 0] { krb5 OID, TOK_ID 01 00, AP-REQ }.
bytes krb5_gss_ap_req(const bytes& oid = oid_krb5) {
    return der(0x60, cat({oid, {0x01, 0x00}, krb5_ap_req()}));
}

// ---------------------------------------------------------------------------------------------
// NTLMSSP

TEST(TokenDecoder, DecodesCurlsShortNegotiateWithoutVersion) {
    const bytes msg = curl_negotiate();
    ASSERT_EQ(msg.size(), 32u);
    auto r = decode_token(msg);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->mechanism, "ntlmssp");
    ASSERT_TRUE(r->ntlm);
    EXPECT_EQ(r->ntlm->type, 1);
    EXPECT_EQ(r->ntlm->flags, curl_flags);
    EXPECT_EQ(r->ntlm->flag_names,
              (std::vector<std::string>{"NTLM_NEGOTIATE_OEM", "NTLMSSP_REQUEST_TARGET",
                                        "NTLMSSP_NEGOTIATE_NTLM", "NTLMSSP_NEGOTIATE_ALWAYS_SIGN",
                                        "NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY"}));
    EXPECT_EQ(r->ntlm->domain, "");
    EXPECT_EQ(r->ntlm->workstation, "");
    EXPECT_EQ(describe(*r),
              "NTLM NEGOTIATE flags=OEM|REQUEST_TARGET|NTLM|ALWAYS_SIGN|EXTENDED_SESSIONSECURITY");
}

TEST(TokenDecoder, DecodesFortyByteNegotiateWithVersion) {
    const bytes msg = negotiate_with_version();
    ASSERT_EQ(msg.size(), 40u);
    auto r = decode_token(msg);
    ASSERT_TRUE(r) << r.error().what;
    ASSERT_TRUE(r->ntlm);
    EXPECT_EQ(r->ntlm->type, 1);
    EXPECT_EQ(r->ntlm->flags, windows_negotiate_flags);
    EXPECT_EQ(describe(*r), "NTLM NEGOTIATE flags=UNICODE|OEM|REQUEST_TARGET|SIGN|SEAL|LM_KEY|NTLM|"
                            "ALWAYS_SIGN|EXTENDED_SESSIONSECURITY|VERSION|128|KEY_EXCH|56");
}

TEST(TokenDecoder, ReadsSuppliedOemDomainAndWorkstationOfNegotiateAsLatin1) {
    const bytes msg = ntlm_builder(1, 40)
                          .flags(12, flag::negotiate_unicode | flag::negotiate_oem |
                                         flag::negotiate_oem_domain_supplied |
                                         flag::negotiate_oem_workstation_supplied)
                          .field(16, ascii("EXSIM"))
                          .field(24, {'W', 'S', 0xE9})  // Latin-1 e-acute
                          .msg;
    auto r = decode_ntlm(msg);
    ASSERT_TRUE(r) << r.error().what;
    // OEM even though UNICODE is set: NEGOTIATE's payload is always OEM.
    EXPECT_EQ(r->domain, "EXSIM");
    EXPECT_EQ(r->workstation, "WS\xC3\xA9");
    EXPECT_EQ(describe(*r), "NTLM NEGOTIATE domain=EXSIM ws=WS\xC3\xA9 flags=UNICODE|OEM|"
                            "OEM_DOMAIN_SUPPLIED|OEM_WORKSTATION_SUPPLIED");
}

TEST(TokenDecoder, IgnoresNegotiateDomainFieldsWhenTheFlagsSayNoneIsSupplied) {
    // Garbage in unused fields must be ignored (MS-NLMP), not read and not refused.
    bytes msg = curl_negotiate();
    put16(msg, 16, 500);
    put32(msg, 20, 0xFFFFFFF0);
    auto r = decode_token(msg);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->ntlm->domain, "");
}

TEST(TokenDecoder, DecodesChallengeWithTargetNameAndTargetInfo) {
    auto r = decode_token(challenge());
    ASSERT_TRUE(r) << r.error().what;
    ASSERT_TRUE(r->ntlm);
    EXPECT_EQ(r->ntlm->type, 2);
    EXPECT_EQ(r->ntlm->flags, challenge_flags);
    EXPECT_EQ(r->ntlm->domain, "EXSIM");
    EXPECT_EQ(describe(*r), "NTLM CHALLENGE target=EXSIM flags=UNICODE|REQUEST_TARGET|NTLM|"
                            "ALWAYS_SIGN|TARGET_TYPE_DOMAIN|EXTENDED_SESSIONSECURITY|TARGET_INFO|"
                            "VERSION|128|56");
}

TEST(TokenDecoder, DecodesAuthenticateWithUtf16DomainUserAndWorkstation) {
    auto r = decode_token(authenticate());
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->mechanism, "ntlmssp");
    ASSERT_TRUE(r->ntlm);
    EXPECT_EQ(r->ntlm->type, 3);
    EXPECT_EQ(r->ntlm->flags, authenticate_flags);
    EXPECT_EQ(r->ntlm->domain, "EXSIM");
    EXPECT_EQ(r->ntlm->user, "bob");
    EXPECT_EQ(r->ntlm->workstation, "WS1");
    EXPECT_FALSE(r->ntlm->invalid_utf16_replaced);
    EXPECT_EQ(describe(*r), "NTLM AUTHENTICATE user=EXSIM\\bob ws=WS1 flags=UNICODE|REQUEST_TARGET|"
                            "NTLM|ALWAYS_SIGN|EXTENDED_SESSIONSECURITY|TARGET_INFO|VERSION|128|"
                            "KEY_EXCH|56");
}

TEST(TokenDecoder, ConvertsSurrogatePairsToFourByteUtf8) {
    auto r = decode_ntlm(authenticate(u"EXSIM", u"b\U0001F600b"));
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->user, "b\xF0\x9F\x98\x80" "b");
    EXPECT_FALSE(r->invalid_utf16_replaced);
}

TEST(TokenDecoder, ReplacesUnpairedSurrogatesAndMarksTheMessage) {
    const char16_t lone_high[] = {u'b', 0xD800, u'o', 0};
    const char16_t lone_low[] = {u'b', 0xDC00, 0};
    const char16_t high_at_end[] = {u'b', 0xDBFF, 0};
    for (const char16_t* user : {lone_high, lone_low, high_at_end}) {
        auto r = decode_ntlm(authenticate(u"EXSIM", user));
        ASSERT_TRUE(r) << r.error().what;
        EXPECT_NE(r->user.find("\xEF\xBF\xBD"), std::string::npos) << r->user;  // U+FFFD
        EXPECT_TRUE(r->invalid_utf16_replaced);
        EXPECT_FALSE(find_ntlm_authenticate(authenticate(u"EXSIM", user)));
    }
}

TEST(TokenDecoder, ReadsOemAuthenticateStringsWhenUnicodeIsNotSet) {
    const bytes msg = ntlm_builder(3, 64)
                          .flags(60, flag::negotiate_oem | flag::negotiate_ntlm)
                          .field(12, bytes(24, 1))
                          .field(20, bytes(24, 2))
                          .field(28, ascii("EXSIM"))
                          .field(36, ascii("alice"))
                          .field(44, ascii("HOST"))
                          .msg;
    auto r = decode_ntlm(msg);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->domain, "EXSIM");
    EXPECT_EQ(r->user, "alice");
    EXPECT_EQ(r->workstation, "HOST");
}

TEST(TokenDecoder, NamesReservedFlagBitsInHex) {
    bytes msg = curl_negotiate();
    put32(msg, 12, flag::negotiate_ntlm | 0x00000008);
    auto r = decode_ntlm(msg);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->flag_names, (std::vector<std::string>{"0x00000008", "NTLMSSP_NEGOTIATE_NTLM"}));
    EXPECT_EQ(exsim::auth::describe_ntlm_flags(0x08 | flag::negotiate_56), "0x00000008|56");
}

TEST(TokenDecoder, EscapesControlCharactersInNamesInTheTraceLine) {
    auto t = decode_token(authenticate(u"EXSIM", u"bob\r\nFAKE", u"WS1"));
    ASSERT_TRUE(t) << t.error().what;
    EXPECT_EQ(t->ntlm->user, "bob\r\nFAKE");
    const std::string line = describe(*t);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_NE(line.find("user=EXSIM\\bob\\x0d\\x0aFAKE"), std::string::npos) << line;
}

// ---------------------------------------------------------------------------------------------
// SPNEGO and Kerberos

TEST(TokenDecoder, DecodesNegTokenInitOfferingNtlmWithANegotiateInside) {
    const bytes tok = neg_token_init({oid_ntlmssp}, negotiate_with_version());
    auto r = decode_token(tok);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->mechanism, "spnego");
    EXPECT_EQ(r->spnego_kind, "negTokenInit");
    EXPECT_EQ(r->offered_mechs, std::vector<std::string>{"ntlmssp"});
    EXPECT_EQ(r->inner_mechanism, "ntlmssp");
    EXPECT_EQ(r->inner_token_size, 40u);
    ASSERT_TRUE(r->ntlm);
    EXPECT_EQ(r->ntlm->type, 1);
    EXPECT_EQ(describe(*r).rfind("SPNEGO negTokenInit mechs=ntlmssp: NTLM NEGOTIATE flags=UNICODE|", 0),
              0u)
        << describe(*r);
}

TEST(TokenDecoder, DecodesNegTokenInitOfferingKerberosFirstWithAnApReq) {
    const bytes tok = neg_token_init({oid_krb5, oid_ms_krb5, oid_ntlmssp}, krb5_gss_ap_req());
    auto r = decode_token(tok);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->spnego_kind, "negTokenInit");
    EXPECT_EQ(r->offered_mechs, (std::vector<std::string>{"krb5", "ms-krb5", "ntlmssp"}));
    EXPECT_EQ(r->inner_mechanism, "kerberos");
    EXPECT_EQ(r->kerberos_kind, "AP-REQ");
    EXPECT_FALSE(r->ntlm);
    EXPECT_EQ(describe(*r), "SPNEGO negTokenInit mechs=krb5,ms-krb5,ntlmssp: Kerberos AP-REQ");
}

TEST(TokenDecoder, ReportsUnknownMechanismsAsDottedOids) {
    const bytes other_oid{0x06, 0x03, 0x2A, 0x03, 0x04};  // 1.2.3.4
    auto r = decode_token(neg_token_init({other_oid, oid_ntlmssp}, {}));
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->offered_mechs, (std::vector<std::string>{"1.2.3.4", "ntlmssp"}));
    EXPECT_EQ(r->inner_mechanism, "");
    EXPECT_EQ(describe(*r), "SPNEGO negTokenInit mechs=1.2.3.4,ntlmssp");
}

TEST(TokenDecoder, DecodesNegTokenRespAcceptIncompleteWithAChallenge) {
    const bytes tok = neg_token_resp(1, oid_ntlmssp, challenge());
    auto r = decode_token(tok);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->mechanism, "spnego");
    EXPECT_EQ(r->spnego_kind, "negTokenResp");
    EXPECT_EQ(r->neg_state, "accept-incomplete");
    EXPECT_EQ(r->chosen_mech, "ntlmssp");
    ASSERT_TRUE(r->ntlm);
    EXPECT_EQ(r->ntlm->type, 2);
    EXPECT_EQ(r->ntlm->domain, "EXSIM");
    EXPECT_EQ(describe(*r).rfind("SPNEGO negTokenResp accept-incomplete mech=ntlmssp: NTLM CHALLENGE "
                                 "target=EXSIM flags=UNICODE|",
                                 0),
              0u)
        << describe(*r);
}

TEST(TokenDecoder, DecodesNegTokenRespAcceptCompletedWithoutAToken) {
    const bytes tok{0xA1, 0x07, 0x30, 0x05, 0xA0, 0x03, 0x0A, 0x01, 0x00};
    EXPECT_EQ(tok, neg_token_resp(0, {}, {}));
    auto r = decode_token(tok);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->spnego_kind, "negTokenResp");
    EXPECT_EQ(r->neg_state, "accept-completed");
    EXPECT_EQ(r->chosen_mech, "");
    EXPECT_EQ(r->inner_mechanism, "");
    EXPECT_FALSE(r->ntlm);
    EXPECT_EQ(describe(*r), "SPNEGO negTokenResp accept-completed");
}

TEST(TokenDecoder, NamesEveryNegState) {
    const char* names[] = {"accept-completed", "accept-incomplete", "reject", "request-mic",
                           "unknown(7)"};
    for (int s : {0, 1, 2, 3, 7}) {
        auto r = decode_token(neg_token_resp(s, oid_krb5, {}));
        ASSERT_TRUE(r) << r.error().what;
        EXPECT_EQ(r->neg_state, names[s == 7 ? 4 : s]);
        EXPECT_EQ(r->chosen_mech, "krb5");
    }
}

TEST(TokenDecoder, FindsTheAuthenticateInsideAClientNegTokenResp) {
    // The client's third leg: negTokenResp with only a responseToken and a mechListMIC.
    const bytes fields = cat({der(0xA2, der(0x04, authenticate())), der(0xA3, der(0x04, bytes(16, 9)))});
    const bytes tok = der(0xA1, der(0x30, fields));
    auto r = decode_token(tok);
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_TRUE(r->has_mech_list_mic);
    EXPECT_EQ(r->neg_state, "");
    auto m = find_ntlm_authenticate(tok);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->domain, "EXSIM");
    EXPECT_EQ(m->user, "bob");
    EXPECT_EQ(m->workstation, "WS1");
    EXPECT_EQ(describe(*r).rfind("SPNEGO negTokenResp mic: NTLM AUTHENTICATE user=EXSIM\\bob ws=WS1", 0),
              0u)
        << describe(*r);
}

TEST(TokenDecoder, FindsTheAuthenticateOfARawNtlmToken) {
    auto m = find_ntlm_authenticate(authenticate(u"EXSIM", u"alice", u"HOST"));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->user, "alice");
    EXPECT_EQ(m->domain, "EXSIM");
}

TEST(TokenDecoder, FindsNoAuthenticateInOtherTokens) {
    EXPECT_FALSE(find_ntlm_authenticate(curl_negotiate()));
    EXPECT_FALSE(find_ntlm_authenticate(challenge()));
    EXPECT_FALSE(find_ntlm_authenticate(neg_token_resp(1, oid_ntlmssp, challenge())));
    EXPECT_FALSE(find_ntlm_authenticate(krb5_gss_ap_req()));
    EXPECT_FALSE(find_ntlm_authenticate(bytes{}));
    bytes broken = authenticate();
    broken.resize(80);
    EXPECT_FALSE(find_ntlm_authenticate(broken));
}

TEST(TokenDecoder, RefusesToHandTheBackEndNamesItMustNotActOn) {
    EXPECT_FALSE(find_ntlm_authenticate(authenticate(u"EXSIM", u"", u"WS1")));  // anonymous
    EXPECT_FALSE(find_ntlm_authenticate(authenticate(u"EXSIM", std::u16string(u"bob\0x", 5))));
    EXPECT_FALSE(find_ntlm_authenticate(authenticate(u"EX\nSIM", u"bob")));
    EXPECT_EQ(describe(*decode_token(authenticate(u"", u""))).rfind("NTLM AUTHENTICATE user=(anonymous)", 0),
              0u);
}

TEST(TokenDecoder, RecognisesABareKerberosGssToken) {
    auto r = decode_token(krb5_gss_ap_req());
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->mechanism, "kerberos");
    EXPECT_EQ(r->spnego_kind, "");
    EXPECT_EQ(r->kerberos_kind, "AP-REQ");
    EXPECT_EQ(describe(*r), "Kerberos AP-REQ");

    auto ms = decode_token(krb5_gss_ap_req(oid_ms_krb5));
    ASSERT_TRUE(ms) << ms.error().what;
    EXPECT_EQ(ms->mechanism, "kerberos");
}

TEST(TokenDecoder, RecognisesRawKerberosMessagesByTheirApplicationTag) {
    auto req = decode_token(krb5_ap_req());
    ASSERT_TRUE(req) << req.error().what;
    EXPECT_EQ(req->mechanism, "kerberos");
    EXPECT_EQ(req->kerberos_kind, "AP-REQ");

    const bytes ap_rep = der(0x6F, der(0x30, der(0xA0, der(0x02, {5}))));
    auto rep = decode_token(der(0x60, cat({oid_krb5, {0x02, 0x00}, ap_rep})));
    ASSERT_TRUE(rep) << rep.error().what;
    EXPECT_EQ(rep->kerberos_kind, "AP-REP");

    const bytes krb_error = der(0x7E, der(0x30, der(0xA0, der(0x02, {5}))));
    auto err = decode_token(krb_error);
    ASSERT_TRUE(err) << err.error().what;
    EXPECT_EQ(err->kerberos_kind, "KRB-ERROR");

    auto in_resp = decode_token(neg_token_resp(0, oid_krb5, der(0x60, cat({oid_krb5, {0x02, 0x00}, ap_rep}))));
    ASSERT_TRUE(in_resp) << in_resp.error().what;
    EXPECT_EQ(describe(*in_resp), "SPNEGO negTokenResp accept-completed mech=krb5: Kerberos AP-REP");
}

TEST(TokenDecoder, ReportsAnUnrecognisedInnerTokenWithoutFailing) {
    const bytes negoex_oid{0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x1E};
    auto r = decode_token(neg_token_init({negoex_oid, oid_ntlmssp}, ascii("NEGOEXTS....")));
    ASSERT_TRUE(r) << r.error().what;
    EXPECT_EQ(r->offered_mechs, (std::vector<std::string>{"negoex", "ntlmssp"}));
    EXPECT_EQ(r->inner_mechanism, "unknown");
    EXPECT_EQ(describe(*r), "SPNEGO negTokenInit mechs=negoex,ntlmssp: unrecognised token (12 bytes)");
}

TEST(TokenDecoder, ReportsErrorOffsetsInTheOuterToken) {
    bytes inner = authenticate();
    put32(inner, 36 + 4, 5000);  // UserName offset past the end
    const bytes tok = neg_token_resp(-1, {}, inner);
    auto r = decode_token(tok);
    ASSERT_FALSE(r);
    // The responseToken's content starts after A1 81 xx 30 81 xx A2 81 xx 04 81 xx.
    const std::size_t inner_start = tok.size() - inner.size();
    EXPECT_EQ(r.error().offset, inner_start + 36);
    EXPECT_NE(r.error().what.find("UserName"), std::string::npos) << r.error().what;
}

// ---------------------------------------------------------------------------------------------
// Hostile input

struct hostile_case {
    const char* name;
    bytes input;
    const char* expected;  // substring of the error
};

bytes with_field(bytes msg, std::size_t descriptor, std::uint16_t length, std::uint32_t offset) {
    put16(msg, descriptor, length);
    put16(msg, descriptor + 2, length);
    put32(msg, descriptor + 4, offset);
    return msg;
}

bytes truncated(bytes b, std::size_t n) {
    b.resize(n);
    return b;
}

// `levels` nested SEQUENCEs around a NULL.
bytes nested(int levels) {
    bytes b{0x05, 0x00};
    for (int i = 0; i < levels; ++i) b = der(0x30, b);
    return b;
}

std::vector<hostile_case> hostile_cases() {
    bytes wrong_sig = curl_negotiate();
    wrong_sig[6] = 'X';
    bytes unknown_type = curl_negotiate();
    put32(unknown_type, 8, 4);
    bytes oem_domain_past_end = curl_negotiate();
    put32(oem_domain_past_end, 12, flag::negotiate_oem_domain_supplied);
    oem_domain_past_end = with_field(oem_domain_past_end, 16, 8, 30);
    const bytes big(exsim::auth::max_token_size + 1, 0x4E);
    const bytes non_minimal_oid{0x06, 0x04, 0x2B, 0x80, 0x06, 0x01};

    return {
        {"empty input", {}, "empty token"},
        {"wrong signature", wrong_sig, "bad NTLMSSP signature"},
        {"not a token at all", ascii("Basic dXNlcjpwdw=="), "unrecognised token"},
        {"signature only", ascii(std::string_view("NTLMSSP\0", 8)), "truncated NTLMSSP header"},
        {"truncated signature", ascii("NTLM"), "truncated NTLMSSP header"},
        {"truncated negotiate header", truncated(curl_negotiate(), 20), "truncated NEGOTIATE header"},
        {"truncated challenge header", truncated(challenge(), 30), "truncated CHALLENGE header"},
        {"challenge with target info flag but no field", truncated(challenge(), 40),
         "truncated CHALLENGE header"},
        {"truncated authenticate header", truncated(authenticate(), 60),
         "truncated AUTHENTICATE header"},
        {"user field past the end", with_field(authenticate(), 36, 8, 400), "runs past the end"},
        {"user field ending one byte past the end",
         with_field(authenticate(), 36, 2, static_cast<std::uint32_t>(authenticate().size() - 1)),
         "runs past the end"},
        {"offset+length overflowing 32 bits", with_field(authenticate(), 36, 0x20, 0xFFFFFFF0u),
         "overflows 32 bits"},
        {"nt response past the end", with_field(authenticate(), 20, 0xFFFF, 100), "NtChallengeResponse"},
        {"session key past the end", with_field(authenticate(), 52, 16, 0x7FFFFFFF),
         "EncryptedRandomSessionKey"},
        {"challenge target info past the end", with_field(challenge(), 40, 200, 56), "TargetInfo"},
        {"negotiate oem domain past the end", oem_domain_past_end, "DomainName field runs past"},
        {"unknown message type", unknown_type, "unknown NTLM message type 4"},
        {"odd-length utf-16 field", with_field(authenticate(), 36, 5, 88), "odd length"},
        {"DER length past end", {0xA1, 0x20, 0x30, 0x03, 0xA0, 0x01, 0x00}, "runs past the end"},
        {"DER long-form length past end", {0xA1, 0x82, 0x01, 0x00, 0x30, 0x00}, "runs past the end"},
        {"DER truncated length bytes", {0xA1, 0x83, 0x01}, "truncated length"},
        {"DER indefinite length", {0xA1, 0x80, 0x30, 0x00, 0x00, 0x00}, "indefinite length"},
        {"DER 5-byte length", {0xA1, 0x85, 0x00, 0x00, 0x00, 0x00, 0x05, 0x30, 0x03, 0x00, 0x00, 0x00},
         "length of 5 bytes"},
        {"DER nesting too deep", der(0xA1, der(0x30, der(0xA5, nested(7)))), "nesting too deep"},
        {"GSS token nesting too deep",
         der(0x60, cat({oid_spnego, der(0xA0, der(0x30, der(0xA1, nested(6))))})), "nesting too deep"},
        {"oversized input", big, "token too large"},
        {"GSS token with trailing bytes", cat({krb5_gss_ap_req(), {0x00}}), "trailing bytes"},
        {"SPNEGO with trailing bytes", cat({neg_token_resp(0, {}, {}), {0x00}}), "trailing bytes"},
        {"GSS token for an unknown mechanism", der(0x60, cat({{0x06, 0x03, 0x2A, 0x03, 0x04}, {0x01}})),
         "unsupported mechanism 1.2.3.4"},
        {"mechToken that is not an OCTET STRING",
         der(0x60, cat({oid_spnego, der(0xA0, der(0x30, der(0xA2, der(0x02, {1}))))})), "mechToken"},
        {"mechTypes holding a non-OID", der(0x60, cat({oid_spnego, der(0xA0, der(0x30, der(0xA0, der(0x30, der(0x02, {1})))))})),
         "OBJECT IDENTIFIER"},
        {"non-minimal OID", der(0xA1, der(0x30, der(0xA1, non_minimal_oid))), "non-minimal OID"},
        {"truncated OID", der(0xA1, der(0x30, der(0xA1, bytes{0x06, 0x02, 0x2B, 0x86}))), "truncated OBJECT IDENTIFIER"},
        {"duplicated negState",
         der(0xA1, der(0x30, cat({der(0xA0, der(0x0A, {0})), der(0xA0, der(0x0A, {1}))}))), "duplicated"},
        {"fields out of order",
         der(0xA1, der(0x30, cat({der(0xA2, der(0x04, {1})), der(0xA0, der(0x0A, {1}))}))), "out of order"},
        {"SPNEGO nested in SPNEGO", neg_token_init({oid_ntlmssp}, neg_token_init({oid_ntlmssp}, curl_negotiate())),
         "SPNEGO nested inside SPNEGO"},
        {"broken NTLM inside SPNEGO", neg_token_init({oid_ntlmssp}, truncated(authenticate(), 70)),
         "runs past the end"},
        {"GSS krb5 token without TOK_ID", der(0x60, oid_krb5), "TOK_ID"},
        {"empty negotiation token", {0xA1, 0x00}, "negTokenResp"},
    };
}

TEST(TokenDecoder, ReturnsAnErrorForEveryHostileInput) {
    for (const auto& c : hostile_cases()) {
        SCOPED_TRACE(c.name);
        auto r = decode_token(c.input);
        ASSERT_FALSE(r) << "decoded as: " << describe(*r);
        EXPECT_NE(r.error().what.find(c.expected), std::string::npos)
            << "error was: " << r.error().what;
        EXPECT_LE(r.error().offset, c.input.size());
        EXPECT_FALSE(find_ntlm_authenticate(c.input));
    }
}

TEST(TokenDecoder, DecodeNtlmRefusesSpnegoAndOversizedInput) {
    auto spnego = decode_ntlm(neg_token_resp(0, {}, {}));
    ASSERT_FALSE(spnego);
    EXPECT_NE(spnego.error().what.find("signature"), std::string::npos);
    const bytes big(exsim::auth::max_token_size + 1, 0);
    auto r = decode_ntlm(big);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("token too large"), std::string::npos);
}

TEST(TokenDecoder, AcceptsTheLargestAllowedTokenSize) {
    bytes msg = authenticate();
    msg.resize(exsim::auth::max_token_size, 0);  // payload padding is legal
    EXPECT_TRUE(decode_token(msg));
}

// ---------------------------------------------------------------------------------------------
// Randomized mutations: the decoder must never crash, hang or read out of bounds (run under
// ASan/UBSan), and must always answer with a value or a sensible error.

TEST(TokenDecoder, SurvivesTwentyThousandRandomMutationsOfValidTokens) {
    const std::vector<bytes> corpus{
        curl_negotiate(),
        negotiate_with_version(),
        challenge(),
        authenticate(),
        krb5_gss_ap_req(),
        krb5_ap_req(),
        neg_token_init({oid_ntlmssp}, negotiate_with_version()),
        neg_token_init({oid_krb5, oid_ntlmssp}, krb5_gss_ap_req()),
        neg_token_resp(1, oid_ntlmssp, challenge()),
        neg_token_resp(0, {}, {}),
        der(0xA1, der(0x30, der(0xA2, der(0x04, authenticate())))),
    };
    for (const auto& c : corpus) ASSERT_TRUE(decode_token(c)) << decode_token(c).error().what;

    std::mt19937 rng(20030226);  // fixed: a failure must be reproducible
    auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    std::size_t decoded = 0, refused = 0;

    for (int iteration = 0; iteration < 20000; ++iteration) {
        bytes b = corpus[pick(corpus.size())];
        const std::size_t mutations = 1 + pick(4);
        for (std::size_t m = 0; m < mutations && !b.empty(); ++m) {
            switch (pick(7)) {
            case 0:  // bit flip
                b[pick(b.size())] ^= static_cast<std::uint8_t>(1u << pick(8));
                break;
            case 1:  // random byte
                b[pick(b.size())] = static_cast<std::uint8_t>(pick(256));
                break;
            case 2:  // truncation
                b.resize(pick(b.size() + 1));
                break;
            case 3: {  // random 16-bit length (NTLM Len fields, DER lengths)
                const std::size_t at = pick(b.size());
                const std::uint16_t v = static_cast<std::uint16_t>(
                    pick(2) ? pick(0x10000) : std::vector<std::size_t>{0, 1, 0x7F, 0x80, 0xFF, 0xFFFF}[pick(6)]);
                b[at] = static_cast<std::uint8_t>(v);
                if (at + 1 < b.size()) b[at + 1] = static_cast<std::uint8_t>(v >> 8);
                break;
            }
            case 4: {  // random 32-bit offset
                const std::size_t at = pick(b.size());
                const std::uint32_t v = pick(2) ? static_cast<std::uint32_t>(rng())
                                                : static_cast<std::uint32_t>(b.size() - pick(4));
                for (std::size_t i = 0; i < 4 && at + i < b.size(); ++i)
                    b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
                break;
            }
            case 5: {  // insert random bytes
                const std::size_t at = pick(b.size() + 1);
                bytes extra(1 + pick(8));
                for (auto& x : extra) x = static_cast<std::uint8_t>(pick(256));
                b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), extra.begin(), extra.end());
                break;
            }
            case 6: {  // DER-style length byte: long forms, indefinite
                const std::uint8_t forms[] = {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x89, 0xFF};
                b[pick(b.size())] = forms[pick(8)];
                break;
            }
            }
        }
        auto r = decode_token(b);
        if (r) {
            ++decoded;
            EXPECT_FALSE(r->mechanism.empty());
            const std::string line = describe(*r);
            EXPECT_FALSE(line.empty());
            EXPECT_EQ(line.find('\n'), std::string::npos);
        } else {
            ++refused;
            EXPECT_FALSE(r.error().what.empty());
            EXPECT_LE(r.error().offset, b.size());
        }
        (void)find_ntlm_authenticate(b);
        auto n = decode_ntlm(b);
        if (n) (void)describe(*n);
    }
    // Both paths must have been exercised, or the mutations test nothing.
    EXPECT_GT(decoded, 1000u);
    EXPECT_GT(refused, 1000u);
}

}  // namespace
