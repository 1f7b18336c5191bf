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


def operations(client):
    """The operations a client built from a WSDL can call."""
    return sorted(client.service._binding._operations.keys())


# Tickets come from any version's SoPrincipal and work with every version.
principal = zeep.Client(f"{base}/Remote/Services86/SoPrincipal.svc?wsdl")
auth = ok(principal.service.AuthenticateUsernamePassword(UserName=username, Password=password))
assert auth.AuthenticationSucceeded is True, auth
ticket = auth.Credentials.Ticket
assert ticket.startswith("7T:"), ticket
out["ticket_issued"] = True
out["user"] = auth.Response.UserName

principal88 = zeep.Client(f"{base}/Remote/Services88/SoPrincipal.svc?wsdl")
bad = ok(principal88.service.AuthenticateUsernamePassword(UserName=username, Password="wrong-password"))
out["bad_login_succeeded"] = bad.AuthenticationSucceeded

# Each version's WSDL: its own operations.
person = {v: zeep.Client(f"{base}/Remote/Services{v}/Person.svc?wsdl") for v in (86, 87, 88)}
out["operations"] = {str(v): operations(c) for v, c in person.items()}

headers = {"ApplicationToken": "1234567-1234-9876", "Credentials": {"Ticket": ticket}}
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
key = ok(person[86].service.CreateTemporaryKey(
    Domain="LoginCustomerCenter", TargetId=42, PersonId=7, Expires=future, _soapheaders=headers
)).Response
assert isinstance(key, str) and len(key) >= 43, key
out["key"] = key

info = ok(person[86].service.CheckTemporaryKey(TemporaryKey=key, _soapheaders=headers)).Response
out["check"] = {
    "Domain": info.Domain,
    "TargetId": info.TargetId,
    "PersonId": info.PersonId,
    "IsExpired": info.IsExpired,
}
out["check86_has_payload"] = "Payload" in info

# Services88 over the SOAP 1.2 binding: a payload, and a domain Services86 does not know.
person12 = person[88].bind("Person", "Soap12Binding_Person")
past = datetime.datetime(2021, 11, 30, 13, 22, 59, tzinfo=datetime.timezone.utc)
old = ok(person12.CreateTemporaryKeyWithPayload(
    Domain="PublicFaq", TargetId=1, PersonId=0, Expires=past, Payload="hello", _soapheaders=headers
)).Response
info12 = ok(person12.CheckTemporaryKey(TemporaryKey=old, _soapheaders=headers)).Response
out["check12"] = {"Domain": info12.Domain, "IsExpired": info12.IsExpired, "Payload": info12.Payload}

# Services86 cannot carry PublicFaq: Succeeded false with ExceptionInfo, not a wrong value.
too_new = person[86].service.CheckTemporaryKey(TemporaryKey=old, _soapheaders=headers)
out["check86_of_a_newer_domain"] = {
    "Succeeded": too_new.header.Succeeded,
    "ExceptionType": too_new.header.ExceptionInfo.ExceptionType,
}

ok(person[87].service.DeleteTemporaryKeysOfDomain(Domain="LoginCustomerCenter", PersonId=7, _soapheaders=headers))
gone = ok(person[88].service.CheckTemporaryKey(TemporaryKey=key, _soapheaders=headers)).Response

# A bad ticket: Succeeded false with ExceptionInfo in the header, not a fault.
failed = person[88].service.CheckTemporaryKey(TemporaryKey=key, _soapheaders={"Credentials": {"Ticket": "7T:bogus"}})
out["bad_ticket"] = {"Succeeded": failed.header.Succeeded, "ExceptionType": failed.header.ExceptionInfo.ExceptionType}
out["after_delete"] = {"Domain": gone.Domain, "TargetId": gone.TargetId}

print(json.dumps(out))
