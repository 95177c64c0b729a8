"""The ERP sandbox's ``$metadata``: each OData V2 service's EDMX document, written from the
entity data model in ``sandbox.erp.model`` (properties with SAP's annotations, keys,
navigation properties and their associations).
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from sandbox.erp.model import EntitySet, Nav, Prop, Service

__all__ = ["metadata_xml"]


def _assoc_name(source: EntitySet, nav: Nav) -> str:
    return f"assoc_{source.name}_{nav.name}"


def _prop_xml(prop: Prop, keys: tuple[str, ...]) -> str:
    attrs = [f"Name={quoteattr(prop.name)}", f"Type={quoteattr(prop.type)}"]
    if prop.name in keys or not prop.nullable:
        attrs.append('Nullable="false"')
    if prop.max_length is not None:
        attrs.append(f'MaxLength="{prop.max_length}"')
    if prop.precision is not None:
        attrs.append(f'Precision="{prop.precision}"')
    if prop.scale is not None:
        attrs.append(f'Scale="{prop.scale}"')
    if prop.type == "Edm.String" and prop.max_length and prop.max_length <= 10:
        attrs.append('sap:display-format="UpperCase"')
    if prop.type == "Edm.DateTime":
        attrs.append('sap:display-format="Date"')
    attrs.append(f"sap:label={quoteattr(prop.label or prop.name)}")
    if not prop.creatable:
        attrs.append('sap:creatable="false"')
    if not prop.updatable:
        attrs.append('sap:updatable="false"')
    return f"<Property {' '.join(attrs)}/>"


def metadata_xml(service: Service) -> str:
    """The EDMX document generic OData V2 clients read before anything else."""
    ns = service.name
    types: list[str] = []
    assocs: list[str] = []
    sets: list[str] = []
    assoc_sets: list[str] = []
    for es in service.sets:
        keys = "".join(f"<PropertyRef Name={quoteattr(k)}/>" for k in es.keys)
        props = "".join(_prop_xml(p, es.keys) for p in es.props)
        navs = []
        for nav in es.navs:
            name = _assoc_name(es, nav)
            target = service.set_map[nav.target]
            navs.append(
                f'<NavigationProperty Name="{nav.name}" Relationship="{ns}.{name}" '
                f'FromRole="FromRole_{name}" ToRole="ToRole_{name}"/>'
            )
            principal = "".join(f'<PropertyRef Name="{a}"/>' for a, _ in nav.link)
            dependent = "".join(f'<PropertyRef Name="{b}"/>' for _, b in nav.link)
            assocs.append(
                f'<Association Name="{name}" sap:content-version="1">'
                f'<End Type="{es.qualified_type}" Multiplicity="1" Role="FromRole_{name}"/>'
                f'<End Type="{target.qualified_type}" Multiplicity="{"*" if nav.many else "0..1"}"'
                f' Role="ToRole_{name}"/>'
                f'<ReferentialConstraint><Principal Role="FromRole_{name}">{principal}</Principal>'
                f'<Dependent Role="ToRole_{name}">{dependent}</Dependent></ReferentialConstraint>'
                f"</Association>"
            )
            assoc_sets.append(
                f'<AssociationSet Name="{name}" Association="{ns}.{name}" '
                f'sap:creatable="false" sap:updatable="false" sap:deletable="false" '
                f'sap:content-version="1">'
                f'<End EntitySet="{es.name}" Role="FromRole_{name}"/>'
                f'<End EntitySet="{target.name}" Role="ToRole_{name}"/></AssociationSet>'
            )
        types.append(
            f'<EntityType Name="{es.type_name}" sap:label={quoteattr(es.label)} '
            f'sap:content-version="1"><Key>{keys}</Key>{props}{"".join(navs)}</EntityType>'
        )
        flags = " ".join(
            f'sap:{flag}="{str(value).lower()}"'
            for flag, value in (
                ("creatable", es.creatable),
                ("updatable", es.updatable),
                ("deletable", es.deletable),
            )
        )
        sets.append(
            f'<EntitySet Name="{es.name}" EntityType="{es.qualified_type}" {flags} '
            f'sap:content-version="1"/>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
        'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
        'xmlns:sap="http://www.sap.com/Protocols/SAPData">'
        '<edmx:DataServices m:DataServiceVersion="2.0">'
        f'<Schema Namespace="{ns}" xml:lang="en" sap:schema-version="1" '
        'xmlns="http://schemas.microsoft.com/ado/2008/09/edm">'
        + "".join(types)
        + "".join(assocs)
        + f'<EntityContainer Name="{ns}_Entities" m:IsDefaultEntityContainer="true" '
        'sap:supported-formats="json">' + "".join(sets) + "".join(assoc_sets) + "</EntityContainer>"
        f"<!-- {escape(service.label)} -->"
        "</Schema></edmx:DataServices></edmx:Edmx>"
    )
