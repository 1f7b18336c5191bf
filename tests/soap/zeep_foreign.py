"""A real SOAP client nobody here wrote (zeep) against keygate's ForeignSystem WSDL.

Usage: zeep_foreign.py BASE_URL USERNAME PASSWORD
Prints one JSON object with what the calls answered; exits non-zero on any failure.
"""
import json
import sys

import zeep
from zeep.helpers import serialize_object
from zeep.plugins import HistoryPlugin

base, username, password = sys.argv[1], sys.argv[2], sys.argv[3]
NS = "http://www.superoffice.net/ws/crm/NetServer/Services86"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
out = {}

APP = "zeep-app"
DEVICE = "zeep-device"
IDENT = "zeep-ident"
# Astral characters (U+1D11E, U+1F980), a combining mark (e + U+0301), Cyrillic, tab, LF, CR,
# and spaces at both ends: all must come back byte for byte.
VALUE = " \U0001d11e ключ e\u0301 \U0001f980\tx\r\ny "


def ok(result):
    """The body of an answer whose header says Succeeded (the WSDL declares the headers)."""
    assert result.header.Succeeded is True, result.header
    assert result.header.ExceptionInfo is None, result.header
    return result.body


def key(k):
    """A ForeignKey carrier as plain data (None stays None)."""
    if k is None:
        return None
    return {
        "Key": k.Key,
        "Value": k.Value,
        "RecordId": k.RecordId,
        "TableName": k.TableName,
        "CreatedBy": k.CreatedBy,
        "UpdatedBy": k.UpdatedBy,
        "CreatedDate": k.CreatedDate.isoformat(),
        "UpdatedDate": k.UpdatedDate.isoformat(),
    }


def device(d):
    return {
        "ForeignDeviceId": d.ForeignDeviceId,
        "Name": d.Name,
        "DeviceIdentifier": d.DeviceIdentifier,
        "ForeignAppId": d.ForeignAppId,
        "CreatedBy": d.CreatedBy,
    }


def rights(carrier):
    """TableRight and FieldProperties as zeep decoded them (masks are xs:list: Python lists)."""
    fields = {}
    for pair in carrier.FieldProperties.FieldPropertyDictionaryKeyValuePair:
        fields[pair.Key] = {
            "Mask": list(pair.Value.FieldRight.Mask),
            "FieldType": pair.Value.FieldType,
            "FieldLength": pair.Value.FieldLength,
        }
    return {
        "TableRight": {"Mask": list(carrier.TableRight.Mask), "Reason": carrier.TableRight.Reason},
        "FieldProperties": fields,
    }


principal = zeep.Client(f"{base}/Remote/Services86/SoPrincipal.svc?wsdl")
auth = ok(principal.service.AuthenticateUsernamePassword(UserName=username, Password=password))
assert auth.AuthenticationSucceeded is True, auth
ticket = auth.Credentials.Ticket
assert ticket.startswith("7T:"), ticket
headers = {"ApplicationToken": "1234567-1234-9876", "Credentials": {"Ticket": ticket}}

history = HistoryPlugin()
client = zeep.Client(f"{base}/Remote/Services86/ForeignSystem.svc?wsdl", plugins=[history])
fs = client.service
factory = client.type_factory("ns0")
out["nil_answers"] = []


def response(name, result):
    """The Response of an answer; None when the wire said `<Response i:nil="true"/>`.

    zeep 4.3.1 decodes a nil complex element as an object whose every field is None
    (python-zeep issue #823), so the nil is read from the envelope zeep received.
    """
    value = ok(result).Response
    received = history.last_received["envelope"].find(f".//{{{NS}}}Response")
    if received is not None and received.get(f"{{{XSI}}}nil") == "true":
        assert value is None or all(v is None for v in serialize_object(value).values()), value
        out["nil_answers"].append(name)
        return None
    return value


def call(name, **kw):
    return response(name, getattr(fs, name)(_soapheaders=headers, **kw))


# SaveForeignKey with a carrier built by the client's type factory: the device with no
# identifier (the by-name methods' device), the same key name in two tables.
saved = call(
    "SaveForeignKey",
    ForeignKey=factory.ForeignKey(Key="crm.id", Value=VALUE, RecordId=42, TableName="contact"),
    ApplicationName=APP,
    DeviceName=DEVICE,
)
assert saved.Value == VALUE, (saved.Value, VALUE)
out["saved"] = key(saved)
out["saved_rights"] = rights(saved)
call(
    "SaveForeignKey",
    ForeignKey=factory.ForeignKey(Key="crm.id", Value="second", RecordId=7, TableName="project"),
    ApplicationName=APP,
    DeviceName=DEVICE,
)
# And on the identified device: two records of one table, and one other table.
for table, record, value in [("sale", 1, "s1"), ("sale", 2, "s2"), ("other", 3, "o3")]:
    call(
        "SaveForeignKey",
        ForeignKey=factory.ForeignKey(Key="erp.no", Value=value, RecordId=record, TableName=table),
        ApplicationName=APP,
        DeviceName=DEVICE,
        DeviceIdentifier=IDENT,
    )

out["get_key"] = key(call("GetKey", ApplicationName=APP, DeviceName=DEVICE, KeyName="crm.id",
                          TableName="contact", RecordId=42))
out["get_key_value"] = call("GetKeyValue", ApplicationName=APP, DeviceName=DEVICE, KeyName="crm.id",
                            TableName="contact", RecordId=42)
assert out["get_key_value"] == VALUE, out["get_key_value"]
out["by_value"] = key(call("GetKeyByValue", ApplicationName=APP, DeviceName=DEVICE, KeyName="crm.id",
                           KeyValue=VALUE, TableName="contact"))
out["by_value_and_identifier"] = key(call(
    "GetKeyByValueAndIdentifier", ApplicationName=APP, DeviceName=DEVICE, DeviceIdentifier=IDENT,
    KeyName="erp.no", KeyValue="s2", TableName="sale",
))
device_keys = call("GetDeviceKeys", ApplicationName=APP, DeviceName=DEVICE)
out["device_keys"] = sorted((key(k) for k in device_keys.ForeignKey), key=lambda k: k["TableName"])

added = call("AddDeviceByIdentifier", ApplicationName=APP, DeviceName="zeep-phone", DeviceIdentifier="IMEI-1")
out["added_device"] = device(added)
out["added_device_rights"] = rights(added)
devices = call("GetApplicationDevices", ApplicationName=APP)
# An empty element (the device without identifier) is None to zeep.
out["devices"] = sorted(([d.Name, d.DeviceIdentifier] for d in devices.ForeignDevice), key=lambda d: (d[0], d[1] or ""))

app = call("GetAppByName", ApplicationName=APP)
out["app"] = {
    "Name": app.Name,
    "CreatedBy": {"Name": app.CreatedBy.Name, "Type": app.CreatedBy.Type},
    "Devices": len(app.Devices.ForeignDevice),
}
out["app_rights"] = rights(app)
by_id = call("GetForeignAppEntity", ForeignAppEntityId=app.ForeignAppId)
assert by_id.ForeignAppId == app.ForeignAppId, by_id
out["app_by_id"] = {"Name": by_id.Name, "Devices": sorted(d.Name for d in by_id.Devices.ForeignDevice)}
out["app_id"] = app.ForeignAppId
out["unknown_app"] = call("GetForeignAppEntity", ForeignAppEntityId=999999)

# Deletes: a blank TableName deletes the key name in every table of the device; RecordId 0
# deletes the key name's records of that table.
ok(fs.DeleteForeignKeyOnName(ApplicationName=APP, DeviceName=DEVICE, KeyName="crm.id", TableName="",
                             RecordId=0, _soapheaders=headers))
ok(fs.DeleteForeignKey(ForeignKey=factory.ForeignKey(Key="erp.no"), ApplicationName=APP, DeviceName=DEVICE,
                       DeviceIdentifier=IDENT, TableName="sale", RecordId=0, _soapheaders=headers))
out["after_delete"] = {
    "contact": call("GetKey", ApplicationName=APP, DeviceName=DEVICE, KeyName="crm.id",
                    TableName="contact", RecordId=42),
    "project": call("GetKey", ApplicationName=APP, DeviceName=DEVICE, KeyName="crm.id",
                    TableName="project", RecordId=7),
    "value": call("GetKeyValue", ApplicationName=APP, DeviceName=DEVICE, KeyName="crm.id",
                  TableName="contact", RecordId=42),
    "sale": call("GetKeyOnDeviceIdentifier", ApplicationName=APP, DeviceName=DEVICE, DeviceIdentifier=IDENT,
                 KeyName="erp.no", TableName="sale", RecordId=0),
    "other": key(call("GetKeyOnDeviceIdentifier", ApplicationName=APP, DeviceName=DEVICE,
                      DeviceIdentifier=IDENT, KeyName="erp.no", TableName="other", RecordId=3)),
    "device_keys": call("GetDeviceKeys", ApplicationName=APP, DeviceName=DEVICE),
}

# The same over the SOAP 1.2 binding.
fs12 = client.bind("ForeignSystem", "Soap12Binding_ForeignSystem")
saved12 = response("SaveForeignKey", fs12.SaveForeignKey(
    ForeignKey=factory.ForeignKey(Key="soap12", Value=VALUE, RecordId=5, TableName="person"),
    ApplicationName=APP, DeviceName=DEVICE, _soapheaders=headers,
))
got12 = response("GetKey", fs12.GetKey(ApplicationName=APP, DeviceName=DEVICE, KeyName="soap12",
                                       TableName="person", RecordId=5, _soapheaders=headers))
envelope12 = history.last_received["envelope"].tag
out["soap12"] = {"saved": key(saved12), "got": key(got12), "mask": list(got12.TableRight.Mask),
                 "envelope": envelope12}


def failure(result):
    assert result.header.Succeeded is False, result.header
    info = result.header.ExceptionInfo
    return {"Succeeded": False, "ExceptionType": info.ExceptionType, "Message": info.Message,
            "Source": info.Source, "Response": result.body.Response}


# A control character: lxml (under zeep) refuses to serialize it, before anything is sent.
# (Should a later zeep send it, the server's answer is recorded: it must be a failure.)
try:
    out["control_char"] = failure(fs.SaveForeignKey(
        ForeignKey=factory.ForeignKey(Key="bad", Value="a\u0001b", RecordId=1, TableName="t"),
        ApplicationName=APP, DeviceName=DEVICE, _soapheaders=headers,
    ))
except ValueError as e:
    out["control_char"] = "refused by the client: " + str(e)
# An over-long value travels and is refused by the server: Succeeded false with ExceptionInfo.
out["too_long"] = failure(fs.SaveForeignKey(
    ForeignKey=factory.ForeignKey(Key="bad", Value="x" * 4001, RecordId=1, TableName="t"),
    ApplicationName=APP, DeviceName=DEVICE, _soapheaders=headers,
))
out["bad_ticket"] = failure(fs.GetKey(ApplicationName=APP, DeviceName=DEVICE, KeyName="soap12",
                                      _soapheaders={"Credentials": {"Ticket": "7T:bogus"}}))
out["bad_not_stored"] = call("GetKey", ApplicationName=APP, DeviceName=DEVICE, KeyName="bad",
                             TableName="t", RecordId=1)

# Services87 and Services88: each WSDL lists its version's operations; Services88 adds
# GetAllForeignKeysOnEntity, answered as a StringDictionary of StringKeyValuePair.
for version in (87, 88):
    c = zeep.Client(f"{base}/Remote/Services{version}/ForeignSystem.svc?wsdl")
    out[f"operations{version}"] = len(c.service._binding._operations)
    out[f"has_all_on_entity{version}"] = "GetAllForeignKeysOnEntity" in c.service._binding._operations
fs88 = zeep.Client(f"{base}/Remote/Services88/ForeignSystem.svc?wsdl").service
on_entity = ok(fs88.GetAllForeignKeysOnEntity(EntityType="other", EntityId=3, _soapheaders=headers)).Response
out["all_on_entity88"] = {p.Key: p.Value for p in on_entity.StringKeyValuePair}
got88 = ok(fs88.GetKey(ApplicationName=APP, DeviceName=DEVICE, KeyName="soap12", TableName="person",
                       RecordId=5, _soapheaders=headers)).Response
out["got88"] = {"Value": got88.Value, "mask": list(got88.TableRight.Mask)}

print(json.dumps(out))
