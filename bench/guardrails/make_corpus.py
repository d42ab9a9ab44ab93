"""Writes corpus.jsonl: the labelled examples the guardrail detectors are measured on.

Each line: {"text", "spans": [[kind, exact value], …], "source"}. Sources are named per
example: values published for testing (payment networks' and processors' test cards, the
IBAN registry's examples, RFC documentation ranges, HMRC's and the SSA's example formats,
AWS's documented example key), and sentences written for this corpus ("constructed"),
including hard negatives: strings shaped like the formats that are not (bad checksums,
dates, times, version numbers, order ids, hashes). Run it to regenerate the file.
"""

from __future__ import annotations

import json
from pathlib import Path

C = "constructed for this corpus"
RFC2606 = "RFC 2606 reserved domain (example.com/.org/.net)"
RFC5737 = "RFC 5737 IPv4 documentation range"
RFC3849 = "RFC 3849 IPv6 documentation prefix 2001:db8::/32"
STRIPE = "Stripe test card numbers (docs.stripe.com/testing)"
PAYPAL = "PayPal/Braintree sandbox test card numbers"
IBAN_REG = "SWIFT IBAN registry example IBAN for the country"
OFCOM = "Ofcom numbers reserved for drama (020 7946 0000-0999)"
NANP = "NANPA fictional 555-01xx range"
HMRC = "HMRC NIM39110 NINO format (prefix letters checked against the excluded pairs)"
SSA = "SSA SSN format (area/group/serial ranges; not a real person's number)"
AWS = "AWS documentation example access key id"
SYN_KEY = "constructed: the vendor's documented key prefix and length, random body"

EXAMPLES: list[tuple[str, list[tuple[str, str]], str]] = [
    # e-mail
    ("Please reply to jane.doe@example.com by Friday.", [("email", "jane.doe@example.com")],
     RFC2606),
    ("cc: ops+alerts@mail.example.org, billing@example.net", [
        ("email", "ops+alerts@mail.example.org"), ("email", "billing@example.net")], RFC2606),
    ("Contact: o'brien@example.com", [("email", "o'brien@example.com")], RFC2606),
    ("My handle is @jane_doe on the forum, not an address.", [], C),
    ("The decorator @app.route('/users') maps the path.", [], C),
    ("Email me at first.last@sub.example.co.uk.", [("email", "first.last@sub.example.co.uk")],
     RFC2606),
    ("user at example dot com (obfuscated on purpose)", [], C),
    # phone
    ("Call me on +44 20 7946 0958 after six.", [("phone", "+44 20 7946 0958")], OFCOM),
    ("Office: (020) 7946 0321", [("phone", "(020) 7946 0321")], OFCOM),
    ("US desk: 212-555-0175", [("phone", "212-555-0175")], NANP),
    ("Support line +1 (312) 555-0142 is open 24/7.", [("phone", "+1 (312) 555-0142")], NANP),
    ("Whatsapp +4915123456789", [("phone", "+4915123456789")], C),
    ("Tel. 030 901820 in Berlin", [("phone", "030 901820")], C),
    ("The meeting is on 2024-03-15 at 10:30.", [], C),
    ("Order number 123456789012 has shipped.", [], C),
    ("The build 2.14.3 fixed it; see issue 4512.", [], C),
    ("Pi is 3.14159 26535 89793 to 15 places.", [], C),
    ("ISBN 978-3-16-148410-0 is on the cover.", [], C),
    ("Revenue grew from 1 200 000 to 1 350 000 EUR.", [], C),
    # payment cards
    ("Card: 4242 4242 4242 4242, exp 12/34", [("card", "4242 4242 4242 4242")], STRIPE),
    ("Use 4111111111111111 for the sandbox.", [("card", "4111111111111111")], PAYPAL),
    ("Mastercard 5555-5555-5555-4444 declined", [("card", "5555-5555-5555-4444")], STRIPE),
    ("Amex 3782 822463 10005 on file", [("card", "3782 822463 10005")], STRIPE),
    ("Card 4242 4242 4242 4241 fails the checksum.", [], C),
    ("Tracking 9400 1000 0000 0000 0000 00 (USPS)", [], C),
    ("Invoice 1234567890123 is due.", [], C),
    # IBAN
    ("Pay to GB82 WEST 1234 5698 7654 32 please.", [("iban", "GB82 WEST 1234 5698 7654 32")],
     IBAN_REG),
    ("IBAN DE89370400440532013000", [("iban", "DE89370400440532013000")], IBAN_REG),
    ("Virement: FR14 2004 1010 0505 0001 3M02 606", [
        ("iban", "FR14 2004 1010 0505 0001 3M02 606")], IBAN_REG),
    ("NL91ABNA0417164300 is the club's account.", [("iban", "NL91ABNA0417164300")], IBAN_REG),
    ("GB82 WEST 1234 5698 7654 33 has a bad check digit.", [], C),
    ("Part number DE12 ABCD 1234 is in stock.", [], C),
    # national IDs
    ("SSN 123-45-6789 on the form", [("national_id", "123-45-6789")], SSA),
    ("NINO: QQ 12 34 56 C", [("national_id", "QQ 12 34 56 C")], HMRC),
    ("National insurance AB123456C", [("national_id", "AB123456C")], HMRC),
    ("000-12-3456 is not a valid SSN area.", [], SSA),
    ("Call 555-12-3456? No, it's a part code.", [], C),
    ("The range 2019-20-2021 is a typo.", [], C),
    # IP addresses
    ("The server at 192.0.2.44 refused the connection.", [("ip", "192.0.2.44")], RFC5737),
    ("Whitelist 198.51.100.7 and 203.0.113.250", [
        ("ip", "198.51.100.7"), ("ip", "203.0.113.250")], RFC5737),
    ("IPv6: 2001:db8:85a3::8a2e:370:7334 answered", [
        ("ip", "2001:db8:85a3::8a2e:370:7334")], RFC3849),
    ("Bind to ::1 only.", [("ip", "::1")], C),
    ("Upgrade to version 1.2.3 today.", [], C),
    ("Running 10.0.19045.3803 build of Windows.", [], C),
    ("Timestamp 12:30:45 in the log.", [], C),
    ("300.1.2.3 is not an address.", [], C),
    ("The MAC is 00:1A:2B:3C:4D:5E.", [], C),
    ("Python 3.11.4.1 wheels", [], C),
    # API keys and private keys
    ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", [("api_key", "AKIAIOSFODNN7EXAMPLE")],
     AWS),
    ("OPENAI_API_KEY=sk-proj-Xq3v9LmT2pR8sK1wY6uZ0aB4cD7eF5gH", [
        ("api_key", "sk-proj-Xq3v9LmT2pR8sK1wY6uZ0aB4cD7eF5gH")], SYN_KEY),
    ("key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-xyz", [
        ("api_key", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-xyz")], SYN_KEY),
    ("token ghp_1234567890abcdefghijABCDEFGHIJ123456 leaked", [
        ("api_key", "ghp_1234567890abcdefghijABCDEFGHIJ123456")], SYN_KEY),
    ("GOOGLE_API_KEY=AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", [
        ("api_key", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q")], SYN_KEY),
    ("slack xoxb-123456789012-abcdefghijklmnop", [
        ("api_key", "xoxb-123456789012-abcdefghijklmnop")], SYN_KEY),
    ("The sk-learn package (scikit-learn) is imported as sklearn.", [], C),
    ("Use the task-runner ask-fn-2 for this.", [], C),
    ("commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 fixed it", [], C),
    ("uuid 123e4567-e89b-12d3-a456-426614174000", [], C),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
     [("private_key",
       "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----")],
     C),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
     "-----END OPENSSH PRIVATE KEY-----", [(
         "private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
         "-----END OPENSSH PRIVATE KEY-----")], C),
    ("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
     [], C),
    # mixed, realistic prompts
    ("Hi, I'm Jane (jane@example.com, +44 20 7946 0123). My card 4242424242424242 was "
     "charged twice; refund to GB82WEST12345698765432.", [
         ("email", "jane@example.com"), ("phone", "+44 20 7946 0123"),
         ("card", "4242424242424242"), ("iban", "GB82WEST12345698765432")], C),
    ("Summarise this log: 2024-05-01T10:22:31Z GET /api/v2/items?id=99812 200 12ms from "
     "203.0.113.9", [("ip", "203.0.113.9")], C),
    ("Translate to French: the quarterly report shows 12% growth over 2023.", [], C),
    ("def add(a, b):\n    return a + b  # version 0.1.0", [], C),
    ("SELECT * FROM users WHERE id = 42 AND created > '2024-01-01';", [], C),
    ("The patient's NHS number is 943 476 5919.", [("national_id", "943 476 5919")],
     "NHS Digital test number format (no NHS-number detector: expected to be missed)"),
    ("Wire EUR 1,250.00 to the account ending 4321.", [], C),
    ("Ring 0800 123 4567 for free.", [("phone", "0800 123 4567")], C),
    # added with the guardrails' second part (issue 11): more published test values and
    # more hard negatives, each source named
    ("Mastercard test: 5555 5555 5555 4444", [("card", "5555 5555 5555 4444")], STRIPE),
    ("Amex 378282246310005 exp 12/34", [("card", "378282246310005")], STRIPE),
    ("Discover 6011111111111117 should work", [("card", "6011111111111117")], STRIPE),
    ("Diners 3056930009020004 is declined", [("card", "3056930009020004")], STRIPE),
    ("JCB test card 3566002020360505.", [("card", "3566002020360505")], STRIPE),
    ("UnionPay: 6200000000000005", [("card", "6200000000000005")], STRIPE),
    ("Card 4242 4242 4242 4243 was rejected as mistyped.", [], C + " (Luhn fails)"),
    ("UPS tracking 1Z999AA10123456784 shows it in transit.", [], C),
    ("Belgian account BE68539007547034 please", [("iban", "BE68539007547034")], IBAN_REG),
    ("CH93 0076 2011 6238 5295 7 (Swiss)", [("iban", "CH93 0076 2011 6238 5295 7")],
     IBAN_REG),
    ("Austria: AT61 1904 3002 3457 3201", [("iban", "AT61 1904 3002 3457 3201")], IBAN_REG),
    ("Pay ES91 2100 0418 4502 0005 1332 by Monday", [
        ("iban", "ES91 2100 0418 4502 0005 1332")], IBAN_REG),
    ("IT60 X054 2811 1010 0000 0123 456 is the Italian example", [
        ("iban", "IT60 X054 2811 1010 0000 0123 456")], IBAN_REG),
    ("Konto PL61 1090 1014 0000 0712 1981 2874", [
        ("iban", "PL61 1090 1014 0000 0712 1981 2874")], IBAN_REG),
    ("DE89 3704 0044 0532 0130 01 has a typo in it", [], C + " (mod 97 fails)"),
    ("Route via 2001:db8::ff00:42:8329 then 192.0.2.44", [
        ("ip", "2001:db8::ff00:42:8329"), ("ip", "192.0.2.44")], RFC3849 + "; " + RFC5737),
    ("Windows build 10.0.19045.3693 is installed.", [], C),
    ("Send it to support@example.net, not to the forum.", [
        ("email", "support@example.net")], RFC2606),
    ("Call +1 202-555-0143 after nine.", [("phone", "+1 202-555-0143")], NANP),
    ("The Manchester office is on 0161 496 0000.", [("phone", "0161 496 0000")],
     "Ofcom numbers reserved for drama (0161 496 0000-0999)"),
    ("Leeds: +44 113 496 0555", [("phone", "+44 113 496 0555")],
     "Ofcom numbers reserved for drama (0113 496 0000-0999)"),
    ("Ticket 2024-0001-0042 is closed.", [], C),
    ("The wallet card showed 078-05-1120.", [("national_id", "078-05-1120")],
     "SSA: the 1938 Woolworth wallet-card number, voided"),
    ("Part number 987-65-4321 is out of stock.", [],
     C + " (area 9xx is never issued, so not an SSN)"),
    ("NINO AB 12 34 56 C on the payslip", [("national_id", "AB 12 34 56 C")], HMRC),
    ("STRIPE_KEY=sk_live_0000EXAMPLE0000KEY0000abcd", [
        ("api_key", "sk_live_0000EXAMPLE0000KEY0000abcd")], SYN_KEY),
    ("HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", [
        ("api_key", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567")], SYN_KEY),
    ("gitlab glpat-Ab12Cd34Ef56Gh78Ij90 was rotated", [
        ("api_key", "glpat-Ab12Cd34Ef56Gh78Ij90")], SYN_KEY),
    ("OpenAI keys start with sk- and AWS ids with AKIA.", [], C),
]


def main() -> None:
    out = Path(__file__).with_name("corpus.jsonl")
    with out.open("w") as f:
        for text, spans, source in EXAMPLES:
            for _, value in spans:
                assert value in text, value
            f.write(json.dumps({"text": text, "spans": spans, "source": source},
                               ensure_ascii=False) + "\n")
    print(f"{len(EXAMPLES)} examples → {out}")


if __name__ == "__main__":
    main()
