"""A real SOAP client nobody here wrote (zeep) against keygate's WSDL.

Usage: zeep_client.py BASE_URL USERNAME PASSWORD
Prints one JSON object with what the calls answered; exits non-zero on any failure.
"""
import datetime
import json
import sys

import zeep

base, username, password = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}


def ok(result):
    """The body of an answer whose header says Succeeded (the WSDL declares the headers)."""
    assert result.header.Succeeded is True, result.header
    assert result.header.ExceptionInfo is None, result.header
    return result.body


principal = zeep.Client(f"{base}/Remote/Services86/SoPrincipal.svc?wsdl")
auth = ok(principal.service.AuthenticateUsernamePassword(UserName=username, Password=password))
assert auth.AuthenticationSucceeded is True, auth
ticket = auth.Credentials.Ticket
assert ticket.startswith("7T:"), ticket
out["ticket_issued"] = True
out["user"] = auth.Response.UserName

bad = ok(principal.service.AuthenticateUsernamePassword(UserName=username, Password="wrong-password"))
out["bad_login_succeeded"] = bad.AuthenticationSucceeded

person = zeep.Client(f"{base}/Remote/Services86/Person.svc?wsdl")
headers = {"ApplicationToken": "1234567-1234-9876", "Credentials": {"Ticket": ticket}}
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
key = ok(person.service.CreateTemporaryKey(
    Domain="LoginCustomerCenter", TargetId=42, PersonId=7, Expires=future, _soapheaders=headers
)).Response
assert isinstance(key, str) and len(key) >= 43, key
out["key"] = key

info = ok(person.service.CheckTemporaryKey(TemporaryKey=key, _soapheaders=headers)).Response
out["check"] = {
    "Domain": info.Domain,
    "TargetId": info.TargetId,
    "PersonId": info.PersonId,
    "IsExpired": info.IsExpired,
}

# The same calls over the SOAP 1.2 binding.
person12 = person.bind("Person", "Soap12Binding_Person")
past = datetime.datetime(2021, 11, 30, 13, 22, 59, tzinfo=datetime.timezone.utc)
old = ok(person12.CreateTemporaryKeyWithPayload(
    Domain="PublicFaq", TargetId=1, PersonId=0, Expires=past, Payload="hello", _soapheaders=headers
)).Response
info12 = ok(person12.CheckTemporaryKey(TemporaryKey=old, _soapheaders=headers)).Response
out["check12"] = {"Domain": info12.Domain, "IsExpired": info12.IsExpired, "Payload": info12.Payload}

ok(person.service.DeleteTemporaryKeysOfDomain(Domain="LoginCustomerCenter", PersonId=7, _soapheaders=headers))
gone = ok(person.service.CheckTemporaryKey(TemporaryKey=key, _soapheaders=headers)).Response

# A bad ticket: Succeeded false with ExceptionInfo in the header, not a fault.
failed = person.service.CheckTemporaryKey(TemporaryKey=key, _soapheaders={"Credentials": {"Ticket": "7T:bogus"}})
out["bad_ticket"] = {"Succeeded": failed.header.Succeeded, "ExceptionType": failed.header.ExceptionInfo.ExceptionType}
out["after_delete"] = {"Domain": gone.Domain, "TargetId": gone.TargetId}

print(json.dumps(out))
