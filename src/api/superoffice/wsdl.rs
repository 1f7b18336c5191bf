//! WSDL 1.1 (document/literal, SOAP 1.1 and SOAP 1.2 bindings), generated from the
//! operation tables, so the contract a SOAP client reads is exactly what the server does.

use super::carrier::{FIELD_RIGHT_FLAGS, TABLE_RIGHT_FLAGS};
use super::ops::{CarrierDef, FieldTy, Operation, Returns, TEMPORARY_KEY_INFO_FIELDS, Ty};
use crate::api::xml::esc;
use crate::service::temporary::Domain;

pub const NS: &str = "http://www.superoffice.net/ws/crm/NetServer/Services86";

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
fn flags_type(name: &str, flags: &[(u32, &str)]) -> String {
    let mut s = format!(r#"<xs:simpleType name="{name}"><xs:list><xs:simpleType><xs:restriction base="xs:string">"#);
    for (_, f) in flags {
        s.push_str(&format!(r#"<xs:enumeration value="{f}"/>"#));
    }
    s.push_str("</xs:restriction></xs:simpleType></xs:list></xs:simpleType>");
    s
}

/// The rights types and the Carrier base every carrier extends.
fn base_types() -> String {
    let mut s = flags_type("ETableRight", TABLE_RIGHT_FLAGS);
    s.push_str(&flags_type("EFieldRight", FIELD_RIGHT_FLAGS));
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

fn schema(ops: &[Operation]) -> String {
    let mut s = format!(
        r#"<xs:schema elementFormDefault="qualified" targetNamespace="{NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{NS}">"#
    );
    s.push_str(r#"<xs:simpleType name="TemporaryKeyDomain"><xs:restriction base="xs:string">"#);
    for d in Domain::ALL {
        s.push_str(&format!(r#"<xs:enumeration value="{}"/>"#, d.name()));
    }
    s.push_str("</xs:restriction></xs:simpleType>");
    s.push_str(&base_types());
    s.push_str(&carrier_types(ops));
    s.push_str(r#"<xs:complexType name="TemporaryKeyInfo"><xs:sequence>"#);
    for f in TEMPORARY_KEY_INFO_FIELDS {
        let (ty, nillable) = match *f {
            "Domain" => ("tns:TemporaryKeyDomain", false),
            "FieldProperties" => ("tns:FieldPropertyDictionary", true),
            "IsExpired" => ("xs:boolean", false),
            "Payload" => ("xs:string", true),
            "TableRight" => ("tns:TableRight", true),
            _ => ("xs:int", false),
        };
        s.push_str(&format!(
            r#"<xs:element minOccurs="0" name="{f}" nillable="{nillable}" type="{ty}"/>"#
        ));
    }
    s.push_str("</xs:sequence></xs:complexType>");
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

fn binding(service: &str, ops: &[Operation], soap: &str, name: &str) -> String {
    let mut s = format!(r#"<wsdl:binding name="{name}" type="tns:{service}">"#);
    s.push_str(&format!(
        r#"<{soap}:binding transport="http://schemas.xmlsoap.org/soap/http"/>"#
    ));
    for op in ops {
        s.push_str(&format!(
            r#"<wsdl:operation name="{0}"><{soap}:operation soapAction="{NS}/{service}/{0}" style="document"/><wsdl:input>"#,
            op.name
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

/// The WSDL of one service (`Person`, `SoPrincipal`) served at `address`.
pub fn wsdl(service: &str, ops: &[Operation], address: &str) -> String {
    let mut s = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><wsdl:definitions name="{service}" targetNamespace="{NS}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{NS}">"#
    );
    s.push_str("<wsdl:types>");
    s.push_str(&schema(ops));
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
    s.push_str(&binding(service, ops, "soap", &format!("BasicHttpBinding_{service}")));
    s.push_str(&binding(service, ops, "soap12", &format!("Soap12Binding_{service}")));
    let addr = esc(address);
    s.push_str(&format!(
        r#"<wsdl:service name="{service}"><wsdl:port name="BasicHttpBinding_{service}" binding="tns:BasicHttpBinding_{service}"><soap:address location="{addr}"/></wsdl:port><wsdl:port name="Soap12Binding_{service}" binding="tns:Soap12Binding_{service}"><soap12:address location="{addr}"/></wsdl:port></wsdl:service>"#
    ));
    s.push_str("</wsdl:definitions>");
    s
}

#[cfg(test)]
mod tests {
    use super::super::ops::{FOREIGN_SYSTEM, PERSON, PRINCIPAL};
    use super::*;

    #[test]
    fn wsdl_is_well_formed_and_lists_every_operation() {
        for (svc, ops) in [
            ("Person", PERSON),
            ("SoPrincipal", PRINCIPAL),
            ("ForeignSystem", FOREIGN_SYSTEM),
        ] {
            let w = wsdl(svc, ops, "http://127.0.0.1:1/Remote/Services86/x.svc");
            let root = crate::api::xml::parse(w.as_bytes()).unwrap();
            assert_eq!(root.name, "definitions");
            for op in ops {
                assert!(w.contains(&format!(r#"<xs:element name="{}">"#, op.name)));
                assert!(w.contains(&format!(r#"soapAction="{NS}/{svc}/{}""#, op.name)));
            }
        }
    }
}
