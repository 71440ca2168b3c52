#!/usr/bin/env python3
"""protocol/gen_spec.py: generates spec.h and spec.c from the AMQP 0-9-1 spec XML.

Reads the spec (Debian's amqp0-9-1.stripped.extended.xml) plus spec_overlay.xml, and writes:
  spec.h  constants, class and method ids, one argument struct per method, the basic
          content properties, and the prototypes of the codec entry points (codec.c);
  spec.c  descriptor tables {wire type, offsetof} per method and per class, walked by the one
          hand-written interpreter in codec.c.
Python 3 standard library only. Any inconsistency in the input stops the build: a wrong table
here would silently mis-decode every frame.
"""

import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET

# Wire types the XML uses, with the C type of the struct member and the codec.h descriptor tag.
WIRE_TYPES = {
    "bit": ("bool", "CODEC_BIT"),
    "octet": ("uint8_t", "CODEC_OCTET"),
    "short": ("uint16_t", "CODEC_SHORT"),
    "long": ("uint32_t", "CODEC_LONG"),
    "longlong": ("uint64_t", "CODEC_LONGLONG"),
    "timestamp": ("uint64_t", "CODEC_LONGLONG"),
    "shortstr": ("struct proto_bytes", "CODEC_SHORTSTR"),
    "longstr": ("struct proto_bytes", "CODEC_LONGSTR"),
    "table": ("struct proto_bytes", "CODEC_TABLE"),
}

# The only class whose properties spec_content_header carries; see property checks below.
PROPERTY_CLASS = "basic"
MAX_PROPERTIES = 15  # flag bit 0 is the continuation bit, which Warren (like RabbitMQ) rejects

IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


class SpecError(Exception):
    pass


def c_name(name):
    ident = name.replace("-", "_").lower()
    if not IDENT.match(ident):
        raise SpecError("name %r does not make a C identifier" % name)
    return ident


def macro_name(name):
    return c_name(name).upper()


def parse_int(element, attribute):
    text = element.get(attribute)
    if text is None:
        raise SpecError("<%s name=%r> has no %s" % (element.tag, element.get("name"), attribute))
    try:
        return int(text, 0)
    except ValueError:
        raise SpecError("<%s name=%r> %s=%r is not an integer"
                        % (element.tag, element.get("name"), attribute, text)) from None


class Field:
    def __init__(self, name, wire):
        self.name = name
        self.wire = wire

    def key(self):
        return (self.name, self.wire)


class Method:
    def __init__(self, name, index, content, fields):
        self.name = name
        self.index = index
        self.content = content
        self.fields = fields

    def key(self):
        return (self.name, self.index, self.content, [f.key() for f in self.fields])


class Class:
    def __init__(self, name, index):
        self.name = name
        self.index = index
        self.methods = []
        self.properties = []


class Spec:
    def __init__(self):
        self.constants = []  # (name, value, error class or None), in XML order
        self.domains = {}
        self.classes = []

    def find_class(self, name):
        for cls in self.classes:
            if cls.name == name:
                return cls
        return None


def resolve_field(element, domains, where):
    name = element.get("name")
    if name is None:
        raise SpecError("unnamed field in %s" % where)
    wire = element.get("type")
    if wire is None:
        domain = element.get("domain")
        if domain is None or domain not in domains:
            raise SpecError("field %s.%s: unknown domain %r" % (where, name, domain))
        wire = domains[domain]
    if wire not in WIRE_TYPES:
        raise SpecError("field %s.%s: unsupported wire type %r" % (where, name, wire))
    return Field(name, wire)


def load(path, spec, overlay):
    """Reads one XML file into spec; with overlay set, entries already present must match."""
    root = ET.parse(path).getroot()
    if root.tag != "amqp":
        raise SpecError("%s: root element is <%s>, not <amqp>" % (path, root.tag))

    for element in root.findall("domain"):
        name, wire = element.get("name"), element.get("type")
        if name in spec.domains and spec.domains[name] != wire:
            raise SpecError("%s: domain %s redefined as %s" % (path, name, wire))
        spec.domains[name] = wire

    for element in root.findall("constant"):
        entry = (element.get("name"), parse_int(element, "value"), element.get("class"))
        same_name = [c for c in spec.constants if c[0] == entry[0]]
        if same_name:
            if overlay and same_name[0] == entry:
                continue
            raise SpecError("%s: constant %s conflicts with %r" % (path, entry[0], same_name[0]))
        spec.constants.append(entry)

    for element in root.findall("class"):
        name, index = element.get("name"), parse_int(element, "index")
        cls = spec.find_class(name)
        if cls is None:
            cls = Class(name, index)
            spec.classes.append(cls)
        elif cls.index != index or not overlay:
            raise SpecError("%s: class %s defined twice" % (path, name))

        properties = [resolve_field(f, spec.domains, name) for f in element.findall("field")]
        if properties:
            keys = [p.key() for p in properties]
            if cls.properties and [p.key() for p in cls.properties] != keys:
                raise SpecError("%s: properties of class %s conflict" % (path, name))
            cls.properties = properties

        for method_element in element.findall("method"):
            where = "%s.%s" % (name, method_element.get("name"))
            method = Method(method_element.get("name"), parse_int(method_element, "index"),
                            method_element.get("content") == "1",
                            [resolve_field(f, spec.domains, where)
                             for f in method_element.findall("field")])
            existing = [m for m in cls.methods if m.name == method.name]
            if existing:
                if overlay and existing[0].key() == method.key():
                    continue
                raise SpecError("%s: method %s conflicts with the spec" % (path, where))
            cls.methods.append(method)


def check(spec):
    """Rejects anything the C output could not represent faithfully."""
    macros = {"SPEC_METHOD_ID", "SPEC_METHOD_CLASS", "SPEC_METHOD_INDEX"}

    def claim(macro):
        if macro in macros:
            raise SpecError("generated name %s would be defined twice" % macro)
        macros.add(macro)

    for name, value, _ in spec.constants:
        claim("SPEC_" + macro_name(name))
    class_ids = set()
    for cls in spec.classes:
        if not 0 < cls.index <= 0xFFFF or cls.index in class_ids:
            raise SpecError("class %s: bad or duplicate index %d" % (cls.name, cls.index))
        class_ids.add(cls.index)
        claim("SPEC_CLASS_" + macro_name(cls.name))
        method_ids = set()
        for method in cls.methods:
            if not 0 < method.index <= 0xFFFF or method.index in method_ids:
                raise SpecError("method %s.%s: bad or duplicate index" % (cls.name, method.name))
            method_ids.add(method.index)
            claim("SPEC_%s_%s" % (macro_name(cls.name), macro_name(method.name)))
            names = [c_name(f.name) for f in method.fields]
            if len(set(names)) != len(names):
                raise SpecError("method %s.%s: duplicate field" % (cls.name, method.name))
        if cls.properties:
            if cls.name != PROPERTY_CLASS:
                raise SpecError("class %s has properties, but spec_content_header only carries "
                                "%s properties: extend the generator" % (cls.name, PROPERTY_CLASS))
            if len(cls.properties) > MAX_PROPERTIES:
                raise SpecError("class %s: more than %d properties" % (cls.name, MAX_PROPERTIES))
            for prop in cls.properties:
                if prop.wire == "bit":
                    raise SpecError("class %s: bit properties are not supported" % cls.name)
                if c_name(prop.name) == "flags":
                    raise SpecError("class %s: a property named flags" % cls.name)
                claim("SPEC_%s_%s_FLAG" % (macro_name(cls.name), macro_name(prop.name)))
    if spec.find_class(PROPERTY_CLASS) is None or not spec.find_class(PROPERTY_CLASS).properties:
        raise SpecError("class %s with properties is missing" % PROPERTY_CLASS)


def all_methods(spec):
    """(class, method) pairs sorted by method id, the order codec.c binary-searches."""
    pairs = [(cls, m) for cls in spec.classes for m in cls.methods]
    return sorted(pairs, key=lambda p: (p[0].index << 16) | p[1].index)


def method_id(cls, method):
    return (cls.index << 16) | method.index


def banner(spec_path, overlay_path):
    return ("/* Generated by protocol/gen_spec.py from %s\n"
            " * and %s. Do not edit: change the generator or the overlay instead. */\n"
            % (os.path.basename(spec_path), os.path.basename(overlay_path)))


HEADER_API = """
/* All method ids in ascending order, for tests and tools that walk the whole spec. */
extern const uint32_t spec_method_ids[];
extern const size_t spec_method_count;

/* Decodes a method frame payload (class id, method id, arguments) into out. Strings and tables
 * borrow from payload and are valid while it is; tables are checked with table_validate.
 * Returns 0, PROTO_ERR_UNKNOWN_METHOD, PROTO_ERR_TRUNCATED (short payload or bytes left over
 * after the last argument) or a table error. */
int spec_method_decode(const uint8_t *payload, size_t len, struct spec_method *out);

/* Encodes m (class id, method id, arguments) into out[0..cap); tables are copied as given,
 * without validation. Returns the bytes written, PROTO_ERR_NO_SPACE, PROTO_ERR_TOO_LONG
 * (a shortstr over 255 bytes) or PROTO_ERR_UNKNOWN_METHOD. */
long spec_method_encode(const struct spec_method *m, uint8_t *out, size_t cap);

/* "class.method" for a method id (static string), or NULL when the id is unknown. */
const char *spec_method_name(uint32_t id);

/* True when the method is followed by a content header and body frames. */
bool spec_method_has_content(uint32_t id);

/* True when the id names a method of the spec (and overlay). */
bool spec_method_is_known(uint32_t id);

/* True for a reply code the spec classes as a hard error (the connection must close). */
bool spec_reply_code_is_hard(uint16_t code);

/* The spec's name of a reply code, e.g. "NOT_FOUND" (static string), or NULL if unknown. */
const char *spec_reply_code_name(uint16_t code);

/* Decodes a content header frame payload (class id, weight, body size, property flags,
 * properties). Only properties whose flag is set are read; the others are zero. Strings and
 * the headers table borrow from payload. Returns 0, PROTO_ERR_TRUNCATED (short payload,
 * trailing bytes, or the unsupported flag continuation bit), PROTO_ERR_UNKNOWN_METHOD (unknown
 * class id) or a table error from validating headers. */
int spec_content_header_decode(const uint8_t *payload, size_t len, struct spec_content_header *out);

/* Encodes h into out[0..cap), writing only the properties whose flag is set in h->props.flags.
 * Returns the bytes written, PROTO_ERR_NO_SPACE, PROTO_ERR_TOO_LONG or PROTO_ERR_UNKNOWN_METHOD
 * (unknown class id). */
long spec_content_header_encode(const struct spec_content_header *h, uint8_t *out, size_t cap);
"""


def emit_header(spec, spec_path, overlay_path):
    out = [banner(spec_path, overlay_path),
           "/* protocol/spec.h: AMQP 0-9-1 constants, method ids and argument structs, and the\n"
           " * entry points of the descriptor-driven codec (codec.c). */\n",
           "#ifndef WARREN_SPEC_H\n#define WARREN_SPEC_H\n\n",
           "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n"
           "#include \"proto.h\"\n\n",
           "/* Constants; those with an error class are reply codes. */\n"]
    for name, value, error_class in spec.constants:
        note = " /* %s */" % error_class if error_class else ""
        out.append("#define SPEC_%s %d%s\n" % (macro_name(name), value, note))

    out.append("\n/* Class ids. */\n")
    for cls in sorted(spec.classes, key=lambda c: c.index):
        out.append("#define SPEC_CLASS_%s %d\n" % (macro_name(cls.name), cls.index))

    out.append("\n/* A method id is (class id << 16) | method index. */\n"
               "#define SPEC_METHOD_ID(cls, m) "
               "((uint32_t)(((uint32_t)(cls) << 16) | (uint16_t)(m)))\n"
               "#define SPEC_METHOD_CLASS(id) ((uint16_t)((uint32_t)(id) >> 16))\n"
               "#define SPEC_METHOD_INDEX(id) ((uint16_t)((uint32_t)(id) & 0xFFFFu))\n\n")
    for cls, method in all_methods(spec):
        out.append("#define SPEC_%s_%s 0x%08XU\n"
                   % (macro_name(cls.name), macro_name(method.name), method_id(cls, method)))

    out.append("\n/* Method arguments, one struct per method, members named after the spec's\n"
               " * fields. shortstr, longstr and table members borrow from the decoded payload;\n"
               " * a table holds its contents without the 4-byte length prefix (see table.h). */\n")
    for cls, method in all_methods(spec):
        out.append("/* %s.%s%s */\n" % (cls.name, method.name,
                                          ", followed by content" if method.content else ""))
        out.append("struct spec_%s_%s {\n" % (c_name(cls.name), c_name(method.name)))
        if not method.fields:
            out.append("    uint8_t unused_; /* no arguments; C forbids empty structs */\n")
        for field in method.fields:
            out.append("    %s %s;\n" % (WIRE_TYPES[field.wire][0], c_name(field.name)))
        out.append("};\n\n")

    out.append("/* A decoded method: id selects the member of args. */\n"
               "struct spec_method {\n    uint32_t id;\n    union spec_method_args {\n")
    for cls, method in all_methods(spec):
        member = "%s_%s" % (c_name(cls.name), c_name(method.name))
        out.append("        struct spec_%s %s;\n" % (member, member))
    out.append("    } args;\n};\n\n")

    for cls in spec.classes:
        if not cls.properties:
            continue
        prefix = macro_name(cls.name)
        out.append("/* %s content properties: flag bit 15 is the first property. */\n" % cls.name)
        for bit, prop in enumerate(cls.properties):
            out.append("#define SPEC_%s_%s_FLAG (1u << %d)\n"
                       % (prefix, macro_name(prop.name), 15 - bit))
        out.append("\n/* Only properties whose flag is set are on the wire; the others read as "
                   "zero. */\n"
                   "struct spec_%s_properties {\n    uint16_t flags;\n" % c_name(cls.name))
        for prop in cls.properties:
            out.append("    %s %s;\n" % (WIRE_TYPES[prop.wire][0], c_name(prop.name)))
        out.append("};\n\n")

    out.append("/* A content header frame's payload. weight is always 0 in 0-9-1. */\n"
               "struct spec_content_header {\n    uint16_t class_id;\n    uint16_t weight;\n"
               "    uint64_t body_size;\n    struct spec_%s_properties props;\n};\n"
               % PROPERTY_CLASS)
    out.append(HEADER_API)
    out.append("\n#endif\n")
    return "".join(out)


def field_rows(struct, fields, with_flags):
    rows = []
    for bit, field in enumerate(fields):
        flag = "1u << %d" % (15 - bit) if with_flags else "0"
        rows.append("    {%s, %s, offsetof(struct %s, %s)},\n"
                    % (WIRE_TYPES[field.wire][1], flag, struct, c_name(field.name)))
    return rows


def emit_source(spec, spec_path, overlay_path):
    methods = all_methods(spec)
    out = [banner(spec_path, overlay_path),
           "/* protocol/spec.c: descriptor tables for the interpreter in codec.c. */\n",
           "#include <stddef.h>\n#include \"codec.h\"\n#include \"spec.h\"\n\n"]

    for cls, method in methods:
        if not method.fields:
            continue
        member = "%s_%s" % (c_name(cls.name), c_name(method.name))
        out.append("static const struct codec_field %s_fields[] = {\n" % member)
        out.extend(field_rows("spec_" + member, method.fields, False))
        out.append("};\n\n")

    out.append("const struct codec_method codec_methods[] = {\n")
    for cls, method in methods:
        member = "%s_%s" % (c_name(cls.name), c_name(method.name))
        fields = ("%s_fields, %d" % (member, len(method.fields))) if method.fields else "NULL, 0"
        out.append("    {SPEC_%s_%s, \"%s.%s\", %s, %s},\n"
                   % (macro_name(cls.name), macro_name(method.name), cls.name, method.name,
                      fields, "true" if method.content else "false"))
    out.append("};\nconst size_t codec_method_count = %d;\n\n" % len(methods))

    out.append("const uint32_t spec_method_ids[] = {\n")
    for cls, method in methods:
        out.append("    SPEC_%s_%s,\n" % (macro_name(cls.name), macro_name(method.name)))
    out.append("};\nconst size_t spec_method_count = %d;\n\n" % len(methods))

    for cls in spec.classes:
        if cls.properties:
            out.append("static const struct codec_field %s_properties[] = {\n" % c_name(cls.name))
            out.extend(field_rows("spec_%s_properties" % c_name(cls.name), cls.properties, True))
            out.append("};\n\n")
    out.append("const struct codec_class codec_classes[] = {\n")
    for cls in sorted(spec.classes, key=lambda c: c.index):
        mask = sum(1 << (15 - bit) for bit in range(len(cls.properties)))
        props = ("%s_properties, %d, 0x%04Xu" % (c_name(cls.name), len(cls.properties), mask)
                 if cls.properties else "NULL, 0, 0")
        out.append("    {SPEC_CLASS_%s, %s},\n" % (macro_name(cls.name), props))
    out.append("};\nconst size_t codec_class_count = %d;\n\n" % len(spec.classes))

    codes = sorted((value, name, error_class) for name, value, error_class in spec.constants
                   if error_class is not None or name.startswith("reply-"))
    out.append("const struct codec_reply_code codec_reply_codes[] = {\n")
    for value, name, error_class in codes:
        out.append("    {SPEC_%s, %s, \"%s\"},\n"
                   % (macro_name(name), "true" if error_class == "hard-error" else "false",
                      macro_name(name)))
    out.append("};\nconst size_t codec_reply_code_count = %d;\n" % len(codes))
    return "".join(out)


def write(path, text):
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="AMQP 0-9-1 spec XML")
    parser.add_argument("--overlay", required=True, help="spec_overlay.xml")
    parser.add_argument("--out-dir", required=True, help="where spec.h and spec.c go")
    args = parser.parse_args()

    spec = Spec()
    try:
        load(args.spec, spec, overlay=False)
        load(args.overlay, spec, overlay=True)
        for cls in spec.classes:
            cls.methods.sort(key=lambda m: m.index)
        check(spec)
    except (SpecError, ET.ParseError, OSError) as error:
        sys.exit("gen_spec.py: %s" % error)

    write(os.path.join(args.out_dir, "spec.h"), emit_header(spec, args.spec, args.overlay))
    write(os.path.join(args.out_dir, "spec.c"), emit_source(spec, args.spec, args.overlay))


if __name__ == "__main__":
    main()
