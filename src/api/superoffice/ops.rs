//! The one definition of each agent operation (name, request, response). The REST agent,
//! the SOAP endpoints and the WSDL are all driven from these tables.

/// A parameter's wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int,
    String,
    DateTime,
    /// TemporaryKeyDomain: its name, or its number.
    Domain,
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    /// Must be present (and not null).
    pub required: bool,
}

/// What an operation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// A string (REST: a JSON string; XML: `<string xmlns=".../Serialization/">`).
    String,
    /// A TemporaryKeyInfo carrier.
    TemporaryKeyInfo,
    /// Nothing (REST: 204 No Content).
    Void,
    /// SoPrincipal's AuthenticateResponse.
    Authenticate,
}

#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub name: &'static str,
    pub params: &'static [Param],
    pub returns: Returns,
    /// The SOAP body element of the answer.
    pub response_element: &'static str,
    pub doc: &'static str,
}

impl Operation {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

const fn p(name: &'static str, ty: Ty, required: bool) -> Param {
    Param { name, ty, required }
}

/// Remote/Services86/Person.svc and /api/v1/Agents/Person.
pub const PERSON: &[Operation] = &[
    Operation {
        name: "CreateTemporaryKey",
        params: &[
            p("Domain", Ty::Domain, true),
            p("TargetId", Ty::Int, false),
            p("PersonId", Ty::Int, false),
            p("Expires", Ty::DateTime, true),
        ],
        returns: Returns::String,
        response_element: "CreateTemporaryKeyResponse",
        doc: "Create a temporary key in the database from the given parameters and return the key string.",
    },
    Operation {
        name: "CreateTemporaryKeyWithPayload",
        params: &[
            p("Domain", Ty::Domain, true),
            p("TargetId", Ty::Int, false),
            p("PersonId", Ty::Int, false),
            p("Expires", Ty::DateTime, true),
            p("Payload", Ty::String, false),
        ],
        returns: Returns::String,
        response_element: "CreateTemporaryKeyWithPayloadResponse",
        doc: "Create a temporary key with a payload (at most 4000 characters) and return the key string.",
    },
    Operation {
        name: "CheckTemporaryKey",
        params: &[p("TemporaryKey", Ty::String, true)],
        returns: Returns::TemporaryKeyInfo,
        response_element: "CheckTemporaryKeyResponse",
        doc: "Check a temporary key: its domain, target, person and whether it has expired.",
    },
    Operation {
        name: "DeleteTemporaryKeysOfDomain",
        params: &[p("Domain", Ty::Domain, true), p("PersonId", Ty::Int, false)],
        returns: Returns::Void,
        response_element: "DeleteTemporaryKeysOfDomainResponse",
        doc: "Delete the temporary keys of a domain and person.",
    },
];

/// Remote/Services86/SoPrincipal.svc.
pub const PRINCIPAL: &[Operation] = &[Operation {
    name: "AuthenticateUsernamePassword",
    params: &[p("UserName", Ty::String, true), p("Password", Ty::String, true)],
    returns: Returns::Authenticate,
    response_element: "AuthenticateResponse",
    doc: "Authenticate with a username and password; answers a ticket for the Credentials header.",
}];

/// Find an operation by name (REST routes are case-insensitive, as in ASP.NET).
pub fn find(ops: &'static [Operation], name: &str) -> Option<&'static Operation> {
    ops.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// The fields of TemporaryKeyInfo, in DataContract (alphabetical) order.
pub const TEMPORARY_KEY_INFO_FIELDS: &[&str] = &[
    "Domain",
    "FieldProperties",
    "IsExpired",
    "Payload",
    "PersonId",
    "TableRight",
    "TargetId",
];
