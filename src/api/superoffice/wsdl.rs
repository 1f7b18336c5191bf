//! WSDL 1.1 (document/literal, SOAP 1.1 and SOAP 1.2 bindings), generated from the
//! operation tables, so the contract a SOAP client reads is exactly what the server does.

use super::ops::{self, CarrierDef, FieldTy, Operation, Returns, Service, TEMPORARY_KEY_INFO_FIELDS, Ty};
use crate::api::xml::esc;

/// One value of a flags enumeration in a WSDL: its name, and for an alias (a name whose value
/// is not the next bit) the value WCF writes in an `EnumerationValue` annotation.
type Flag = (&'static str, Option<u32>);

/// ETableRight's xs:list enumeration as each version's published WSDL has it.
fn table_right_flags(version: u8) -> &'static [Flag] {
    const V86: &[Flag] = &[
        ("Select", None),
        ("Update", None),
        ("Insert", None),
        ("Delete", None),
        ("Filtering", None),
        ("RestrictedUpdate", None),
    ];
    const V88: &[Flag] = &[
        ("Select", None),
        ("Update", None),
        ("Insert", None),
        ("Delete", None),
        ("Filtering", None),
        ("RestrictedUpdate", None),
        ("Unused1", None),
        ("Uninitialized", None),
        ("R", Some(1)),
        ("F", Some(16)),
    ];
    if version >= 88 { V88 } else { V86 }
}

/// EFieldRight's xs:list enumeration as each version's published WSDL has it.
fn field_right_flags(version: u8) -> &'static [Flag] {
    const V86: &[Flag] = &[
        ("Read", None),
        ("Write", None),
        ("Unused1", None),
        ("Unused2", None),
        ("Unused3", None),
        ("Unused4", None),
        ("UIHintMandatory", None),
        ("UIHintReadOnly", None),
        ("UndefinedValue256", None),
    ];
    const V88: &[Flag] = &[
        ("Read", None),
        ("Write", None),
        ("Unused1", None),
        ("Unused2", None),
        ("Unused3", None),
        ("Unused4", None),
        ("UIHintMandatory", None),
        ("UIHintReadOnly", None),
        ("UndefinedValue256", None),
        ("Nullable", Some(32)),
    ];
    if version >= 88 { V88 } else { V86 }
}

fn xsd_type(t: Ty) -> String {
    match t {
        Ty::Int => "xs:int".into(),
        Ty::String => "xs:string".into(),
        Ty::DateTime => "xs:dateTime".into(),
        Ty::Domain => "tns:TemporaryKeyDomain".into(),
        Ty::Carrier(c) => format!("tns:{}", c.name),
    }
}

fn response_members(r: Returns) -> String {
    let response = |ty: &str| format!(r#"<xs:element minOccurs="0" name="Response" nillable="true" type="{ty}"/>"#);
    match r {
        Returns::String => response("xs:string"),
        Returns::TemporaryKeyInfo => response("tns:TemporaryKeyInfo"),
        Returns::Void => String::new(),
        Returns::Authenticate => {
            r#"<xs:element minOccurs="0" name="Response" nillable="true" type="tns:SoPrincipalCarrier"/><xs:element minOccurs="0" name="Credentials" nillable="true" type="tns:SoCredentials"/><xs:element minOccurs="0" name="AuthenticationSucceeded" type="xs:boolean"/>"#.into()
        }
        Returns::Carrier(c) => response(&format!("tns:{}", c.name)),
        Returns::List(c) => response(&format!("tns:ArrayOf{}", c.name)),
        Returns::StringDictionary => response("tns:StringDictionary"),
    }
}

/// The carriers the operations use, each once, nested ones included.
fn carriers(ops: &[Operation]) -> (Vec<&'static CarrierDef>, Vec<&'static CarrierDef>) {
    fn add(c: &'static CarrierDef, all: &mut Vec<&'static CarrierDef>, lists: &mut Vec<&'static CarrierDef>) {
        if all.iter().any(|x| x.name == c.name) {
            return;
        }
        all.push(c);
        for (_, ty) in c.fields {
            match ty {
                FieldTy::Carrier(d) => add(d, all, lists),
                FieldTy::List(d) => {
                    if !lists.iter().any(|x| x.name == d.name) {
                        lists.push(d);
                    }
                    add(d, all, lists)
                }
                _ => {}
            }
        }
    }
    let (mut all, mut lists) = (vec![], vec![]);
    for op in ops {
        for p in op.params {
            if let Ty::Carrier(c) = p.ty {
                add(c, &mut all, &mut lists);
            }
        }
        match op.returns {
            Returns::Carrier(c) => add(c, &mut all, &mut lists),
            Returns::List(c) => {
                if !lists.iter().any(|x| x.name == c.name) {
                    lists.push(c);
                }
                add(c, &mut all, &mut lists)
            }
            _ => {}
        }
    }
    (all, lists)
}

fn field_xsd(ty: FieldTy) -> (String, bool) {
    match ty {
        FieldTy::Int => ("xs:int".into(), false),
        FieldTy::Short => ("xs:short".into(), false),
        FieldTy::Bool => ("xs:boolean".into(), false),
        FieldTy::String => ("xs:string".into(), true),
        FieldTy::DateTime => ("xs:dateTime".into(), false),
        FieldTy::UserType => ("tns:UserType".into(), false),
        FieldTy::Carrier(c) => (format!("tns:{}", c.name), true),
        FieldTy::List(c) => (format!("tns:ArrayOf{}", c.name), true),
        FieldTy::StringDictionary => ("tns:StringDictionary".into(), true),
    }
}

/// A flags enumeration as an xs:list of its single flags (as the published WSDL types them).
fn flags_type(name: &str, flags: &[Flag]) -> String {
    let mut s = format!(r#"<xs:simpleType name="{name}"><xs:list><xs:simpleType><xs:restriction base="xs:string">"#);
    for (f, alias) in flags {
        match alias {
            None => s.push_str(&format!(r#"<xs:enumeration value="{f}"/>"#)),
            Some(v) => s.push_str(&format!(
                r#"<xs:enumeration value="{f}"><xs:annotation><xs:appinfo><EnumerationValue xmlns="http://schemas.microsoft.com/2003/10/Serialization/">{v}</EnumerationValue></xs:appinfo></xs:annotation></xs:enumeration>"#
            )),
        }
    }
    s.push_str("</xs:restriction></xs:simpleType></xs:list></xs:simpleType>");
    s
}

/// The rights types and the Carrier base every carrier extends.
fn base_types(version: u8) -> String {
    let mut s = flags_type("ETableRight", table_right_flags(version));
    s.push_str(&flags_type("EFieldRight", field_right_flags(version)));
    s.push_str(concat!(
        r#"<xs:complexType name="TableRight"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" name="Mask" type="tns:ETableRight"/>"#,
        r#"<xs:element minOccurs="0" name="Reason" nillable="true" type="xs:string"/>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="FieldRight"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" name="Mask" type="tns:EFieldRight"/>"#,
        r#"<xs:element minOccurs="0" name="Reason" nillable="true" type="xs:string"/>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="FieldProperty"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" name="FieldRight" nillable="true" type="tns:FieldRight"/>"#,
        r#"<xs:element minOccurs="0" name="FieldType" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="FieldLength" type="xs:int"/>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="FieldPropertyDictionary"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" maxOccurs="unbounded" name="FieldPropertyDictionaryKeyValuePair"><xs:complexType><xs:sequence>"#,
        r#"<xs:element name="Key" nillable="true" type="xs:string"/>"#,
        r#"<xs:element name="Value" nillable="true" type="tns:FieldProperty"/>"#,
        r#"</xs:sequence></xs:complexType></xs:element>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="Carrier"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" name="TableRight" nillable="true" type="tns:TableRight"/>"#,
        r#"<xs:element minOccurs="0" name="FieldProperties" nillable="true" type="tns:FieldPropertyDictionary"/>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="StringDictionary"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" maxOccurs="unbounded" name="StringKeyValuePair"><xs:complexType><xs:sequence>"#,
        r#"<xs:element name="Key" nillable="true" type="xs:string"/>"#,
        r#"<xs:element name="Value" nillable="true" type="xs:string"/>"#,
        r#"</xs:sequence></xs:complexType></xs:element>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:simpleType name="UserType"><xs:restriction base="xs:string">"#,
        r#"<xs:enumeration value="Unknown"/><xs:enumeration value="InternalAssociate"/>"#,
        r#"<xs:enumeration value="ResourceAssociate"/><xs:enumeration value="ExternalAssociate"/>"#,
        r#"<xs:enumeration value="AnonymousAssociate"/><xs:enumeration value="SystemAssociate"/>"#,
        r#"</xs:restriction></xs:simpleType>"#,
    ));
    s
}

fn carrier_types(ops: &[Operation]) -> String {
    let (all, lists) = carriers(ops);
    let mut s = String::new();
    for c in all {
        s.push_str(&format!(
            r#"<xs:complexType name="{}"><xs:complexContent mixed="false"><xs:extension base="tns:Carrier"><xs:sequence>"#,
            c.name
        ));
        for (name, ty) in c.fields {
            let (t, nillable) = field_xsd(*ty);
            s.push_str(&format!(
                r#"<xs:element minOccurs="0" name="{name}" nillable="{nillable}" type="{t}"/>"#
            ));
        }
        s.push_str("</xs:sequence></xs:extension></xs:complexContent></xs:complexType>");
    }
    for c in lists {
        s.push_str(&format!(
            r#"<xs:complexType name="ArrayOf{0}"><xs:sequence><xs:element minOccurs="0" maxOccurs="unbounded" name="{0}" nillable="true" type="tns:{0}"/></xs:sequence></xs:complexType>"#,
            c.name
        ));
    }
    s
}

/// Header elements a request of this service may carry.
fn request_headers(service: &str) -> &'static [&'static str] {
    if service == "SoPrincipal" {
        &["ApplicationToken"]
    } else {
        &["ApplicationToken", "Credentials", "TimeZone"]
    }
}

const RESPONSE_HEADERS: &[&str] = &["ExceptionInfo", "Succeeded"];

fn schema(svc: Service, ops: &[Operation]) -> String {
    let ns = svc.ns();
    let mut s = format!(
        r#"<xs:schema elementFormDefault="qualified" targetNamespace="{ns}" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{ns}">"#
    );
    s.push_str(&base_types(svc.version));
    s.push_str(&carrier_types(ops));
    let temporary_keys = ops
        .iter()
        .any(|o| o.returns == Returns::TemporaryKeyInfo || o.params.iter().any(|p| p.ty == Ty::Domain));
    if temporary_keys {
        s.push_str(r#"<xs:simpleType name="TemporaryKeyDomain"><xs:annotation><xs:appinfo><ActualType Name="short" Namespace="http://www.w3.org/2001/XMLSchema" xmlns="http://schemas.microsoft.com/2003/10/Serialization/"/></xs:appinfo></xs:annotation><xs:restriction base="xs:string">"#);
        for d in ops::domains_in(svc.version) {
            s.push_str(&format!(r#"<xs:enumeration value="{}"/>"#, d.name()));
        }
        s.push_str("</xs:restriction></xs:simpleType>");
        s.push_str(r#"<xs:complexType name="TemporaryKeyInfo"><xs:complexContent mixed="false"><xs:extension base="tns:Carrier"><xs:sequence>"#);
        for (f, since) in TEMPORARY_KEY_INFO_FIELDS {
            if *since > svc.version {
                continue;
            }
            let (ty, nillable) = match *f {
                "Domain" => ("tns:TemporaryKeyDomain", false),
                "IsExpired" => ("xs:boolean", false),
                "Payload" => ("xs:string", true),
                _ => ("xs:int", false),
            };
            s.push_str(&format!(
                r#"<xs:element minOccurs="0" name="{f}" nillable="{nillable}" type="{ty}"/>"#
            ));
        }
        s.push_str("</xs:sequence></xs:extension></xs:complexContent></xs:complexType>");
    }
    s.push_str(concat!(
        r#"<xs:complexType name="SoCredentials"><xs:sequence><xs:element minOccurs="0" name="Ticket" nillable="true" type="xs:string"/></xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="SoTimeZone"><xs:sequence><xs:element minOccurs="0" name="SoTimeZoneId" type="xs:int"/><xs:element minOccurs="0" name="SoTimeZoneLocationCode" nillable="true" type="xs:string"/></xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="SoPrincipalCarrier"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" name="UserName" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="PersonId" type="xs:int"/>"#,
        r#"<xs:element minOccurs="0" name="UserId" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="OrganizationId" nillable="true" type="xs:string"/>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:complexType name="SoExceptionInfo"><xs:sequence>"#,
        r#"<xs:element minOccurs="0" name="Message" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="StackTrace" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="FriendlyText" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="ExceptionType" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="Source" nillable="true" type="xs:string"/>"#,
        r#"<xs:element minOccurs="0" name="InnerException" nillable="true" type="tns:SoExceptionInfo"/>"#,
        r#"<xs:element minOccurs="0" name="Parameters" nillable="true" type="xs:string"/>"#,
        r#"</xs:sequence></xs:complexType>"#,
        r#"<xs:element name="ApplicationToken" nillable="true" type="xs:string"/>"#,
        r#"<xs:element name="Credentials" nillable="true" type="tns:SoCredentials"/>"#,
        r#"<xs:element name="TimeZone" nillable="true" type="tns:SoTimeZone"/>"#,
        r#"<xs:element name="ExceptionInfo" nillable="true" type="tns:SoExceptionInfo"/>"#,
        r#"<xs:element name="Succeeded" type="xs:boolean"/>"#,
    ));
    for op in ops {
        s.push_str(&format!(
            r#"<xs:element name="{}"><xs:complexType><xs:sequence>"#,
            op.name
        ));
        for p in op.params {
            let nillable = matches!(p.ty, Ty::String | Ty::Carrier(_));
            s.push_str(&format!(
                r#"<xs:element minOccurs="0" name="{}" nillable="{nillable}" type="{}"/>"#,
                p.name,
                xsd_type(p.ty)
            ));
        }
        s.push_str("</xs:sequence></xs:complexType></xs:element>");
        s.push_str(&format!(
            r#"<xs:element name="{}"><xs:complexType><xs:sequence>{}</xs:sequence></xs:complexType></xs:element>"#,
            op.response_element,
            response_members(op.returns)
        ));
    }
    s.push_str("</xs:schema>");
    s
}

fn binding(svc: Service, ops: &[Operation], soap: &str, name: &str) -> String {
    let service = svc.agent.name();
    let mut s = format!(r#"<wsdl:binding name="{name}" type="tns:{service}">"#);
    s.push_str(&format!(
        r#"<{soap}:binding transport="http://schemas.xmlsoap.org/soap/http"/>"#
    ));
    for op in ops {
        s.push_str(&format!(
            r#"<wsdl:operation name="{}"><{soap}:operation soapAction="{}" style="document"/><wsdl:input>"#,
            op.name,
            svc.action(op)
        ));
        for h in request_headers(service) {
            s.push_str(&format!(
                r#"<{soap}:header message="tns:{h}Header" part="{h}" use="literal"/>"#
            ));
        }
        s.push_str(&format!(
            r#"<{soap}:body use="literal" parts="parameters"/></wsdl:input><wsdl:output>"#
        ));
        for h in RESPONSE_HEADERS {
            s.push_str(&format!(
                r#"<{soap}:header message="tns:{h}Header" part="{h}" use="literal"/>"#
            ));
        }
        s.push_str(&format!(
            r#"<{soap}:body use="literal" parts="parameters"/></wsdl:output></wsdl:operation>"#
        ));
    }
    s.push_str("</wsdl:binding>");
    s
}

/// The WSDL of one service at one version, listing exactly that version's operations,
/// served at `address`.
pub fn wsdl(svc: Service, address: &str) -> String {
    let service = svc.agent.name();
    let ops = &svc.ops()[..];
    let ns = svc.ns();
    let mut s = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><wsdl:definitions name="{service}" targetNamespace="{ns}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{ns}">"#
    );
    s.push_str("<wsdl:types>");
    s.push_str(&schema(svc, ops));
    s.push_str("</wsdl:types>");
    for op in ops {
        s.push_str(&format!(
            r#"<wsdl:message name="{0}Request"><wsdl:part name="parameters" element="tns:{0}"/></wsdl:message><wsdl:message name="{0}Response"><wsdl:part name="parameters" element="tns:{1}"/></wsdl:message>"#,
            op.name, op.response_element
        ));
    }
    for h in request_headers(service).iter().chain(RESPONSE_HEADERS) {
        s.push_str(&format!(
            r#"<wsdl:message name="{h}Header"><wsdl:part name="{h}" element="tns:{h}"/></wsdl:message>"#
        ));
    }
    s.push_str(&format!(r#"<wsdl:portType name="{service}">"#));
    for op in ops {
        s.push_str(&format!(
            r#"<wsdl:operation name="{0}"><wsdl:documentation>{1}</wsdl:documentation><wsdl:input message="tns:{0}Request"/><wsdl:output message="tns:{0}Response"/></wsdl:operation>"#,
            op.name,
            esc(op.doc)
        ));
    }
    s.push_str("</wsdl:portType>");
    s.push_str(&binding(svc, ops, "soap", &format!("BasicHttpBinding_{service}")));
    s.push_str(&binding(svc, ops, "soap12", &format!("Soap12Binding_{service}")));
    let addr = esc(address);
    s.push_str(&format!(
        r#"<wsdl:service name="{service}"><wsdl:port name="BasicHttpBinding_{service}" binding="tns:BasicHttpBinding_{service}"><soap:address location="{addr}"/></wsdl:port><wsdl:port name="Soap12Binding_{service}" binding="tns:Soap12Binding_{service}"><soap12:address location="{addr}"/></wsdl:port></wsdl:service>"#
    ));
    s.push_str("</wsdl:definitions>");
    s
}

#[cfg(test)]
mod tests {
    use super::super::carrier::{
        FIELD_FULL, FIELD_READ, FIELD_READ_ONLY, FIELD_RIGHT_FLAGS, TABLE_FULL, TABLE_RIGHT_FLAGS, TABLE_SELECT,
        xml_flags,
    };
    use super::super::ops::{Agent, SOAP_VERSIONS};
    use super::*;

    #[test]
    fn each_version_lists_exactly_its_operations_in_its_namespace() {
        for version in SOAP_VERSIONS {
            for agent in [Agent::Person, Agent::SoPrincipal, Agent::ForeignSystem] {
                let svc = Service { agent, version };
                let w = wsdl(svc, "http://127.0.0.1:1/Remote/x.svc");
                let root = crate::api::xml::parse(w.as_bytes()).unwrap();
                assert_eq!(root.name, "definitions");
                assert!(w.contains(&format!(
                    r#"targetNamespace="http://www.superoffice.net/ws/crm/NetServer/Services{version}""#
                )));
                for op in agent.ops() {
                    let listed = w.contains(&format!(r#"<xs:element name="{}">"#, op.name));
                    assert_eq!(listed, op.soap_since <= version, "{} in {version}", op.name);
                    assert_eq!(
                        w.contains(&format!(r#"soapAction="{}""#, svc.action(op))),
                        op.soap_since <= version
                    );
                }
            }
        }
    }

    #[test]
    fn every_mask_the_server_writes_is_in_every_versions_enumeration() {
        for version in SOAP_VERSIONS {
            let table: Vec<&str> = table_right_flags(version).iter().map(|(n, _)| *n).collect();
            let field: Vec<&str> = field_right_flags(version).iter().map(|(n, _)| *n).collect();
            for m in [TABLE_FULL, TABLE_SELECT] {
                for f in xml_flags(m, TABLE_RIGHT_FLAGS).split(' ') {
                    assert!(table.contains(&f), "{f} in {version}");
                }
            }
            for m in [FIELD_FULL, FIELD_READ, FIELD_READ_ONLY] {
                for f in xml_flags(m, FIELD_RIGHT_FLAGS).split(' ') {
                    assert!(field.contains(&f), "{f} in {version}");
                }
            }
            assert!(!table.contains(&"FULL") && !field.contains(&"FULL"));
        }
    }
}
