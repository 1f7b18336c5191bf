//! The one definition of each agent operation (name, request, response). The REST agent,
//! the SOAP endpoints and the WSDL are all driven from these tables.

use crate::service::temporary::Domain;

/// A parameter's wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int,
    String,
    DateTime,
    /// TemporaryKeyDomain: its name, or its number.
    Domain,
    /// A carrier object (JSON object, XML element with children, or `Name.Field` form fields).
    Carrier(&'static CarrierDef),
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    /// Must be present (and not null).
    pub required: bool,
    /// The REST agent reads it from the query string (case-insensitive name), never the body.
    pub query: bool,
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
    /// One carrier, or null when there is nothing to return.
    Carrier(&'static CarrierDef),
    /// An array of carriers.
    List(&'static CarrierDef),
    /// A string-to-string dictionary (SOAP: a StringDictionary of StringKeyValuePair).
    StringDictionary,
}

/// Which agent an operation belongs to (REST `/api/v1/Agents/<agent>/`, SOAP `<agent>.svc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    Person,
    SoPrincipal,
    ForeignSystem,
}

impl Agent {
    pub fn name(self) -> &'static str {
        match self {
            Agent::Person => "Person",
            Agent::SoPrincipal => "SoPrincipal",
            Agent::ForeignSystem => "ForeignSystem",
        }
    }

    pub fn ops(self) -> &'static [Operation] {
        match self {
            Agent::Person => PERSON,
            Agent::SoPrincipal => PRINCIPAL,
            Agent::ForeignSystem => FOREIGN_SYSTEM,
        }
    }
}

/// One SOAP service: an agent's contract at one version (`Remote/Services88/Person.svc`).
/// Each version has its own namespace and SOAPActions and offers the operations whose
/// `soap_since` it has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub agent: Agent,
    pub version: u8,
}

impl Service {
    /// `http://www.superoffice.net/ws/crm/NetServer/Services88`.
    pub fn ns(self) -> String {
        format!("http://www.superoffice.net/ws/crm/NetServer/Services{}", self.version)
    }

    /// The operations this version offers, in table order.
    pub fn ops(self) -> Vec<Operation> {
        self.agent
            .ops()
            .iter()
            .filter(|o| o.soap_since <= self.version)
            .copied()
            .collect()
    }

    /// The operation of this name (exact, as XML names are) if this version offers it.
    pub fn op(self, name: &str) -> Option<&'static Operation> {
        self.agent
            .ops()
            .iter()
            .find(|o| o.name == name && o.soap_since <= self.version)
    }

    /// The SOAPAction of an operation: `<namespace>/<agent>/<operation>`.
    pub fn action(self, op: &Operation) -> String {
        format!("{}/{}/{}", self.ns(), self.agent.name(), op.name)
    }
}

/// A field's type in a carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldTy {
    Int,
    Short,
    Bool,
    String,
    DateTime,
    /// Associate.Type.
    UserType,
    Carrier(&'static CarrierDef),
    List(&'static CarrierDef),
    StringDictionary,
}

/// A carrier: its own fields in declared order. Every carrier also has the base fields
/// TableRight and FieldProperties (JSON: after its own; XML: before them, as DataContract
/// writes a base class's members first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarrierDef {
    pub name: &'static str,
    pub fields: &'static [(&'static str, FieldTy)],
}

impl CarrierDef {
    pub fn field(&self, name: &str) -> Option<FieldTy> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| *t)
    }
}

pub const ASSOCIATE: CarrierDef = CarrierDef {
    name: "Associate",
    fields: &[
        ("AssociateId", FieldTy::Int),
        ("Name", FieldTy::String),
        ("PersonId", FieldTy::Int),
        ("Rank", FieldTy::Short),
        ("Tooltip", FieldTy::String),
        ("Type", FieldTy::UserType),
        ("GroupIdx", FieldTy::Int),
        ("FullName", FieldTy::String),
        ("FormalName", FieldTy::String),
        ("Deleted", FieldTy::Bool),
        ("EjUserId", FieldTy::Int),
        ("UserName", FieldTy::String),
        ("ExtraFields", FieldTy::StringDictionary),
        ("CustomFields", FieldTy::StringDictionary),
    ],
};

pub const FOREIGN_DEVICE: CarrierDef = CarrierDef {
    name: "ForeignDevice",
    fields: &[
        ("ForeignDeviceId", FieldTy::Int),
        ("Name", FieldTy::String),
        ("CreatedDate", FieldTy::DateTime),
        ("UpdatedDate", FieldTy::DateTime),
        ("AssociateFullName", FieldTy::String),
        ("CreatedBy", FieldTy::String),
        ("UpdatedBy", FieldTy::String),
        ("DeviceIdentifier", FieldTy::String),
        ("ForeignAppId", FieldTy::Int),
    ],
};

pub const FOREIGN_APP_ENTITY: CarrierDef = CarrierDef {
    name: "ForeignAppEntity",
    fields: &[
        ("ForeignAppId", FieldTy::Int),
        ("Name", FieldTy::String),
        ("CreatedDate", FieldTy::DateTime),
        ("UpdatedDate", FieldTy::DateTime),
        ("CreatedBy", FieldTy::Carrier(&ASSOCIATE)),
        ("UpdatedBy", FieldTy::Carrier(&ASSOCIATE)),
        ("Devices", FieldTy::List(&FOREIGN_DEVICE)),
    ],
};

pub const FOREIGN_KEY: CarrierDef = CarrierDef {
    name: "ForeignKey",
    fields: &[
        ("Key", FieldTy::String),
        ("Value", FieldTy::String),
        ("RecordId", FieldTy::Int),
        ("CreatedDate", FieldTy::DateTime),
        ("UpdatedDate", FieldTy::DateTime),
        ("UpdatedBy", FieldTy::String),
        ("CreatedBy", FieldTy::String),
        ("TableName", FieldTy::String),
    ],
};

#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub agent: Agent,
    pub name: &'static str,
    pub params: &'static [Param],
    pub returns: Returns,
    /// The SOAP body element of the answer.
    pub response_element: &'static str,
    pub doc: &'static str,
    /// The first SOAP service version (86, 87, 88) that has it.
    pub soap_since: u8,
}

impl Operation {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

const fn p(name: &'static str, ty: Ty, required: bool) -> Param {
    Param {
        name,
        ty,
        required,
        query: false,
    }
}

/// Remote/Services86..88/Person.svc (each version offers the operations of its `soap_since`)
/// and /api/v1/Agents/Person (all of them).
pub const PERSON: &[Operation] = &[
    Operation {
        agent: Agent::Person,
        name: "CreateTemporaryKey",
        params: &[
            p("Domain", Ty::Domain, true),
            p("TargetId", Ty::Int, false),
            p("PersonId", Ty::Int, false),
            p("Expires", Ty::DateTime, true),
        ],
        returns: Returns::String,
        response_element: "CreateTemporaryKeyResponse",
        soap_since: 86,
        doc: "Create a temporary key in the database from the given parameters and return the key string.",
    },
    Operation {
        agent: Agent::Person,
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
        soap_since: 88,
        doc: "Create a temporary key with a payload (at most 4000 characters) and return the key string.",
    },
    Operation {
        agent: Agent::Person,
        name: "CheckTemporaryKey",
        params: &[p("TemporaryKey", Ty::String, true)],
        returns: Returns::TemporaryKeyInfo,
        response_element: "CheckTemporaryKeyResponse",
        soap_since: 86,
        doc: "Check a temporary key: its domain, target, person and whether it has expired.",
    },
    Operation {
        agent: Agent::Person,
        name: "DeleteTemporaryKeysOfDomain",
        params: &[p("Domain", Ty::Domain, true), p("PersonId", Ty::Int, false)],
        returns: Returns::Void,
        response_element: "DeleteTemporaryKeysOfDomainResponse",
        soap_since: 87,
        doc: "Delete the temporary keys of a domain and person.",
    },
];

/// Remote/Services86..88/SoPrincipal.svc.
pub const PRINCIPAL: &[Operation] = &[Operation {
    agent: Agent::SoPrincipal,
    name: "AuthenticateUsernamePassword",
    params: &[p("UserName", Ty::String, true), p("Password", Ty::String, true)],
    returns: Returns::Authenticate,
    response_element: "AuthenticateResponse",
    soap_since: 86,
    doc: "Authenticate with a username and password; answers a ticket for the Credentials header.",
}];

const fn q(name: &'static str) -> Param {
    Param {
        name,
        ty: Ty::Int,
        required: true,
        query: true,
    }
}

/// Remote/Services86..88/ForeignSystem.svc and /api/v1/Agents/ForeignSystem: the mapping store of
/// applications, devices and keys (see `core::foreign`).
pub const FOREIGN_SYSTEM: &[Operation] = &[
    Operation {
        agent: Agent::ForeignSystem,
        name: "CreateDefaultForeignAppEntity",
        params: &[],
        returns: Returns::Carrier(&FOREIGN_APP_ENTITY),
        response_element: "CreateDefaultForeignAppEntityResponse",
        doc: "Loading default values into a new ForeignAppEntity (nothing is saved).",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "SaveForeignAppEntity",
        params: &[p("ForeignAppEntity", Ty::Carrier(&FOREIGN_APP_ENTITY), true)],
        returns: Returns::Carrier(&FOREIGN_APP_ENTITY),
        response_element: "SaveForeignAppEntityResponse",
        doc: "Updates the existing ForeignAppEntity or creates a new ForeignAppEntity if the id parameter is 0.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "DeleteForeignAppEntity",
        params: &[q("ForeignAppEntityId")],
        returns: Returns::Void,
        response_element: "DeleteForeignAppEntityResponse",
        doc: "Deletes the ForeignAppEntity, with its devices and keys.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetForeignAppEntity",
        params: &[q("ForeignAppEntityId")],
        returns: Returns::Carrier(&FOREIGN_APP_ENTITY),
        response_element: "GetForeignAppEntityResponse",
        doc: "Gets a ForeignAppEntity object.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetAppByName",
        params: &[p("ApplicationName", Ty::String, true)],
        returns: Returns::Carrier(&FOREIGN_APP_ENTITY),
        response_element: "GetAppByNameResponse",
        doc: "Gets the ForeignApp with the given name.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetApplicationDevices",
        params: &[p("ApplicationName", Ty::String, true)],
        returns: Returns::List(&FOREIGN_DEVICE),
        response_element: "GetApplicationDevicesResponse",
        doc: "Gets all devices that belong to a foreign application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetDeviceByName",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
        ],
        returns: Returns::Carrier(&FOREIGN_DEVICE),
        response_element: "GetDeviceByNameResponse",
        doc: "Gets a ForeignDevice with deviceName (and no identifier) that belongs to the application with applicationName.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetDeviceByIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
        ],
        returns: Returns::Carrier(&FOREIGN_DEVICE),
        response_element: "GetDeviceByIdentifierResponse",
        doc: "Gets a ForeignDevice with deviceName and deviceIdentifier that belongs to the application with applicationName.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "AddDeviceByIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
        ],
        returns: Returns::Carrier(&FOREIGN_DEVICE),
        response_element: "AddDeviceByIdentifierResponse",
        doc: "Adds a new ForeignDevice with deviceName that belongs to the application with applicationName, with an optional device-specific identifier.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "SaveDeviceByIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("ForeignDevice", Ty::Carrier(&FOREIGN_DEVICE), false),
        ],
        returns: Returns::Carrier(&FOREIGN_DEVICE),
        response_element: "SaveDeviceByIdentifierResponse",
        doc: "Updates a ForeignDevice with deviceName that belongs to the application with applicationName.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "DeleteDeviceByIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
        ],
        returns: Returns::Void,
        response_element: "DeleteDeviceByIdentifierResponse",
        doc: "Delete a ForeignDevice with deviceName and deviceIdentifier that belongs to the application with applicationName.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetForeignDevice",
        params: &[q("ForeignDeviceId")],
        returns: Returns::Carrier(&FOREIGN_DEVICE),
        response_element: "GetForeignDeviceResponse",
        doc: "Gets a ForeignDevice object.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "SaveForeignDevice",
        params: &[
            p("ForeignDevice", Ty::Carrier(&FOREIGN_DEVICE), true),
            p("ApplicationName", Ty::String, true),
        ],
        returns: Returns::Carrier(&FOREIGN_DEVICE),
        response_element: "SaveForeignDeviceResponse",
        doc: "Saves a foreign device for an foreign application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "DeleteForeignDevice",
        params: &[
            p("ForeignDevice", Ty::Carrier(&FOREIGN_DEVICE), true),
            p("ApplicationName", Ty::String, true),
        ],
        returns: Returns::Void,
        response_element: "DeleteForeignDeviceResponse",
        doc: "Deletes a foreign device from an application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetKey",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("KeyName", Ty::String, false),
            p("TableName", Ty::String, false),
            p("RecordId", Ty::Int, false),
        ],
        returns: Returns::Carrier(&FOREIGN_KEY),
        response_element: "GetKeyResponse",
        doc: "Returning a foreign key by its key name, that belongs to the specified device and application. A table name and record ID can also be specified.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetKeyValue",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("KeyName", Ty::String, false),
            p("TableName", Ty::String, false),
            p("RecordId", Ty::Int, false),
        ],
        returns: Returns::String,
        response_element: "GetKeyValueResponse",
        doc: "Gets the string value of a ForeignKey, that belongs to the specified device and application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetKeyOnDeviceIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("KeyName", Ty::String, false),
            p("TableName", Ty::String, false),
            p("RecordId", Ty::Int, false),
        ],
        returns: Returns::Carrier(&FOREIGN_KEY),
        response_element: "GetKeyOnDeviceIdentifierResponse",
        doc: "Returning a foreign key by its key name and device identifier, that belongs to the specified device and application. A table name and record ID can also be specified.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetKeyValueOnDeviceIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("KeyName", Ty::String, false),
            p("TableName", Ty::String, false),
            p("RecordId", Ty::Int, false),
        ],
        returns: Returns::String,
        response_element: "GetKeyValueOnDeviceIdentifierResponse",
        doc: "Returning a foreign key string value by its key name and device identifier, that belongs to the specified device and application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "AddForeignKey",
        params: &[
            p("ForeignKey", Ty::Carrier(&FOREIGN_KEY), true),
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
        ],
        returns: Returns::Carrier(&FOREIGN_KEY),
        response_element: "AddForeignKeyResponse",
        doc: "Add a new key belonging to the ForeignApp and ForeignDevice specified.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "SaveForeignKey",
        params: &[
            p("ForeignKey", Ty::Carrier(&FOREIGN_KEY), true),
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
        ],
        returns: Returns::Carrier(&FOREIGN_KEY),
        response_element: "SaveForeignKeyResponse",
        doc: "Saves a key belonging to the ForeignApp and ForeignDevice specified.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "DeleteForeignKeyOnName",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("KeyName", Ty::String, false),
            p("TableName", Ty::String, false),
            p("RecordId", Ty::Int, false),
        ],
        returns: Returns::Void,
        response_element: "DeleteForeignKeyOnNameResponse",
        doc: "Deletes all specified occurrences of a key, belonging to the ForeignApp and ForeignDevice, table and record specified. A blank table name deletes ALL keys of the given name; a recordId of 0 deletes ALL keys of the given name for the given table.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "DeleteForeignKey",
        params: &[
            p("ForeignKey", Ty::Carrier(&FOREIGN_KEY), true),
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("TableName", Ty::String, false),
            p("RecordId", Ty::Int, false),
        ],
        returns: Returns::Void,
        response_element: "DeleteForeignKeyResponse",
        doc: "Deletes all specified occurrences of a key, belonging to the ForeignApp and ForeignDevice, table and record specified. A blank table name deletes ALL keys of the given name; a recordId of 0 deletes ALL keys of the given name for the given table.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetKeyByValue",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("KeyName", Ty::String, false),
            p("KeyValue", Ty::String, false),
            p("TableName", Ty::String, false),
        ],
        returns: Returns::Carrier(&FOREIGN_KEY),
        response_element: "GetKeyByValueResponse",
        doc: "Get a foreignkey based on its name and value, that belongs to the specified device and application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetKeyByValueAndIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("KeyName", Ty::String, false),
            p("KeyValue", Ty::String, false),
            p("TableName", Ty::String, false),
        ],
        returns: Returns::Carrier(&FOREIGN_KEY),
        response_element: "GetKeyByValueAndIdentifierResponse",
        doc: "Get a foreignkey based on its name and value, that belongs to the specified deviceId, device, and application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetAllForeignKeysOnEntity",
        params: &[p("EntityType", Ty::String, true), p("EntityId", Ty::Int, false)],
        returns: Returns::StringDictionary,
        response_element: "GetAllForeignKeysOnEntityResponse",
        doc: "Get a list of foreignkeys ('app.device.key') and their values that belong to the specified entity.",
        soap_since: 88,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetDeviceKeys",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
        ],
        returns: Returns::List(&FOREIGN_KEY),
        response_element: "GetDeviceKeysResponse",
        doc: "Returns all ForeignKeys that belong to a device.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetApplicationKeys",
        params: &[p("ApplicationName", Ty::String, true)],
        returns: Returns::List(&FOREIGN_KEY),
        response_element: "GetApplicationKeysResponse",
        doc: "Returns all ForeignKeys that belong to an application.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetDeviceKeysOnDeviceIdentifier",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
        ],
        returns: Returns::List(&FOREIGN_KEY),
        response_element: "GetDeviceKeysOnDeviceIdentifierResponse",
        doc: "Returns all ForeignKeys that belong to a device with a given deviceIdentifier.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetDeviceKeysOnDeviceIdentifierTable",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("TableName", Ty::String, false),
        ],
        returns: Returns::List(&FOREIGN_KEY),
        response_element: "GetDeviceKeysOnDeviceIdentifierTableResponse",
        doc: "Returns all ForeignKeys that belong to a device with a given deviceIdentifier and table name.",
        soap_since: 86,
    },
    Operation {
        agent: Agent::ForeignSystem,
        name: "GetDeviceKeysOnDeviceIdentifierTableRecordId",
        params: &[
            p("ApplicationName", Ty::String, true),
            p("DeviceName", Ty::String, true),
            p("DeviceIdentifier", Ty::String, false),
            p("TableName", Ty::String, false),
            p("RecordId", Ty::Int, false),
        ],
        returns: Returns::List(&FOREIGN_KEY),
        response_element: "GetDeviceKeysOnDeviceIdentifierTableRecordIdResponse",
        doc: "Returns all ForeignKeys that belong to a device with a given deviceIdentifier and table name, as well as record id.",
        soap_since: 86,
    },
];

/// Find an operation by name (REST routes are case-insensitive, as in ASP.NET).
pub fn find(ops: &'static [Operation], name: &str) -> Option<&'static Operation> {
    ops.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// TemporaryKeyInfo's own fields in the contract's order, each with the first SOAP version
/// that has it. XML writes the Carrier base's TableRight and FieldProperties before them; JSON
/// writes every member in alphabetical order (see `info_json`).
pub const TEMPORARY_KEY_INFO_FIELDS: &[(&str, u8)] = &[
    ("Domain", 86),
    ("TargetId", 86),
    ("PersonId", 86),
    ("IsExpired", 86),
    ("Payload", 88),
];

/// The SOAP service versions served: `Remote/Services86`, `Services87` and `Services88`.
pub const SOAP_VERSIONS: [u8; 3] = [86, 87, 88];

/// The newest contract: the REST agents (which have no version) follow it.
pub const LATEST: u8 = 88;

/// The TemporaryKeyDomain values a contract version knows: 0-4 in Services86, 0-6 in
/// Services87 (PublicFaq, ChangePasswordCustomerCenter), 0-7 from Services88 on
/// (RegisterCustomerCenterEmailVerification).
pub fn domains_in(version: u8) -> &'static [Domain] {
    let n = match version {
        ..=86 => 5,
        87 => 7,
        _ => 8,
    };
    &Domain::ALL[..n]
}
