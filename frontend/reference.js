// The API reference page: renders the service's own OpenAPI document (GET api/openapi.json,
// generated from the types that parse and answer requests) as operations and schemas.
//
// Everything is built with DOM calls and textContent, never innerHTML: the page runs under the
// same strict CSP as the playground (no inline script or style, nothing from another origin).

const DOCUMENT_URL = "api/openapi.json";
const METHODS = ["get", "post", "put", "patch", "delete"];

const article = document.getElementById("reference");
const contents = document.getElementById("contents");
const status = document.getElementById("reference-status");

/** `el("p", {className: "x"}, child, "text")`: an element with properties and children. */
function el(tag, { dataset, ...properties } = {}, ...children) {
  const element = Object.assign(document.createElement(tag), properties);
  Object.assign(element.dataset, dataset);
  element.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** Prose from the document: paragraphs split at blank lines, `code` spans kept as code. */
function prose(text) {
  const fragment = document.createDocumentFragment();
  for (const paragraph of (text ?? "").split(/\n\s*\n/)) {
    if (!paragraph.trim()) continue;
    const p = el("p");
    paragraph.replace(/\s*\n\s*/g, " ").split("`").forEach((part, index) => {
      p.append(index % 2 === 1 ? el("code", { textContent: part }) : part);
    });
    fragment.append(p);
  }
  return fragment;
}

/** Inline prose: one line, code spans kept. */
function inline(text) {
  const span = el("span");
  for (const p of prose(text).children) span.append(...p.childNodes, " ");
  return span;
}

const refName = (ref) => ref.split("/").pop();
const schemaAnchor = (name) => `schema-${name}`;

function resolve(schema, doc) {
  return schema?.$ref ? doc.components?.schemas?.[refName(schema.$ref)] ?? {} : schema ?? {};
}

/** A schema's type as a short label, with links to named schemas. */
function typeLabel(schema) {
  if (!schema || Object.keys(schema).length === 0) return el("span", { className: "type", textContent: "any JSON" });
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return el("a", { className: "type type-ref", href: `#${schemaAnchor(name)}`, textContent: name });
  }
  const label = el("span", { className: "type" });
  if (schema.oneOf || schema.anyOf) {
    (schema.oneOf ?? schema.anyOf).forEach((part, index) => label.append(index ? " | " : "", typeLabel(part)));
    return label;
  }
  if (schema.allOf) {
    const ref = schema.allOf.find((part) => part.$ref);
    return ref ? typeLabel(ref) : el("span", { className: "type", textContent: "object" });
  }
  const types = [schema.type ?? "any"].flat();
  types.forEach((type, index) => {
    label.append(index ? " | " : "");
    if (type === "array") label.append("array of ", typeLabel(schema.items));
    else label.append(type === "integer" && schema.format ? `integer (${schema.format})` : type);
  });
  return label;
}

/** Enum, bounds, defaults and formats, as one line. */
function constraints(schema) {
  const parts = [];
  if (schema.enum) parts.push(`one of ${schema.enum.map((value) => JSON.stringify(value)).join(", ")}`);
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== undefined) parts.push(`at least ${schema.minLength} characters`);
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  if (schema.format && schema.type !== "integer") parts.push(`format ${schema.format}`);
  return parts.join(" · ");
}

/** A table of an object schema's fields. */
function fieldsTable(schema, doc) {
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties ?? {}).map(([name, property]) => {
    const described = property.$ref && !property.description ? resolve(property, doc) : property;
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, el("code", { textContent: name }), required.has(name) ? el("span", { className: "required", textContent: "required" }) : null),
      el("td", {}, typeLabel(property)),
      el("td", {}, constraints(property) ? el("p", { className: "constraints", textContent: constraints(property) }) : null, prose(described.description)),
    );
  });
  return el(
    "table",
    { className: "fields" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col", textContent: "Field" }), el("th", { scope: "col", textContent: "Type" }), el("th", { scope: "col", textContent: "Meaning" }))),
    el("tbody", {}, ...rows),
  );
}

/** A named schema: its description, then its fields, values or alternatives. */
function schemaSection(name, schema, doc) {
  const section = el("section", { className: "schema", id: schemaAnchor(name) }, el("h3", {}, el("code", { textContent: name })));
  section.append(prose(schema.description));
  const parts = schema.allOf ?? [schema];
  for (const part of parts) {
    if (part.properties) section.append(fieldsTable(part, doc));
    if (part.oneOf && parts.length > 1) section.append(el("p", { className: "constraints" }, inline(part.description ?? "one of the alternatives")));
  }
  if (schema.enum) {
    section.append(el("ul", { className: "values" }, ...schema.enum.map((value) => el("li", {}, el("code", { textContent: JSON.stringify(value) })))));
  }
  if (schema.oneOf && !schema.allOf) {
    section.append(el("p", {}, "One of: ", typeLabel(schema)));
  }
  return section;
}

function jsonBlock(value) {
  return el("pre", { className: "json" }, el("code", { textContent: JSON.stringify(value, null, 2) }));
}

/** Examples of a content entry, each folded under its summary. */
function examplesOf(content) {
  const entries = content.examples ? Object.entries(content.examples) : content.example !== undefined ? [["example", { value: content.example }]] : [];
  // A text example (an event stream) is shown as the text it is.
  const block = (value) => (typeof value === "string" ? el("pre", {}, el("code", { textContent: value })) : jsonBlock(value));
  return entries.map(([name, example]) =>
    el("details", { className: "example" }, el("summary", {}, example.summary ?? name), block(example.value)),
  );
}

function operationSection(path, method, operation, doc) {
  const id = `op-${operation.operationId ?? `${method}-${path}`}`;
  const section = el(
    "section",
    { className: "operation", id },
    el("h2", {}, el("span", { className: `method method-${method}`, textContent: method.toUpperCase() }), " ", el("code", { className: "path", textContent: path })),
  );
  if (operation.summary) section.append(el("p", { className: "summary", textContent: operation.summary }));
  section.append(prose(operation.description));

  const security = operation.security ?? doc.security ?? [];
  if (security.length) {
    const optional = security.some((requirement) => Object.keys(requirement).length === 0);
    const schemes = security.flatMap((requirement) => Object.keys(requirement));
    section.append(el("p", { className: "auth" }, optional ? "Key optional: " : "Key required: ", ...schemes.flatMap((scheme, index) => [index ? " or " : "", schemeLabel(scheme, doc)])));
  }

  const parameters = operation.parameters ?? [];
  if (parameters.length) {
    section.append(
      el("h3", { textContent: "Parameters" }),
      fieldsTable({ properties: Object.fromEntries(parameters.map((parameter) => [`${parameter.name} (${parameter.in})`, { ...parameter.schema, description: parameter.description }])), required: parameters.filter((p) => p.required).map((p) => `${p.name} (${p.in})`) }, doc),
    );
  }

  const body = operation.requestBody;
  if (body) {
    section.append(el("h3", { textContent: "Request body" }), prose(body.description));
    for (const [type, content] of Object.entries(body.content ?? {})) {
      section.append(el("p", {}, el("code", { textContent: type }), ": ", typeLabel(content.schema)), ...examplesOf(content));
    }
  }

  section.append(el("h3", { textContent: "Responses" }));
  const rows = Object.entries(operation.responses ?? {}).map(([code, response]) => {
    // Each media type the answer may come as (JSON, or an event stream when asked for).
    const contents = Object.entries(response.content ?? {});
    const headers = Object.keys(response.headers ?? {});
    return el(
      "tr",
      { dataset: { status: code } },
      el("th", { scope: "row" }, el("span", { className: `status-code status-${code[0]}xx`, textContent: code })),
      el(
        "td",
        {},
        prose(response.description),
        ...contents.map(([type, content]) =>
          el("p", { className: "constraints" }, "Body", ...(contents.length > 1 ? [" (", el("code", { textContent: type }), ")"] : []), ": ", typeLabel(content.schema.allOf?.[0] ?? content.schema)),
        ),
        headers.length ? el("p", { className: "constraints" }, "Headers: ", ...headers.flatMap((name, index) => [index ? ", " : "", el("code", { textContent: name })])) : null,
        ...contents.flatMap(([, content]) => examplesOf(content)),
      ),
    );
  });
  section.append(el("table", { className: "responses" }, el("tbody", {}, ...rows)));
  return { id, section };
}

function schemeLabel(name, doc) {
  const scheme = doc.components?.securitySchemes?.[name] ?? {};
  const text = scheme.type === "http" ? `Authorization: ${scheme.scheme === "bearer" ? "Bearer" : scheme.scheme} <key>` : scheme.type === "apiKey" ? `${scheme.name}: <key>` : name;
  return el("code", { textContent: text });
}

function render(doc) {
  const info = doc.info ?? {};
  article.replaceChildren(
    el("header", { className: "reference-intro" }, el("h2", {}, `${info.title ?? "API"} `, el("span", { className: "version", textContent: `version ${info.version ?? "?"}, OpenAPI ${doc.openapi}` })), prose(info.description)),
  );
  const toc = el("ol");
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const { id, section } = operationSection(path, method, item[method], doc);
      article.append(section);
      toc.append(el("li", {}, el("a", { href: `#${id}` }, el("span", { className: `method method-${method}`, textContent: method.toUpperCase() }), " ", path)));
    }
  }
  const schemas = Object.entries(doc.components?.schemas ?? {});
  article.append(el("h2", { id: "schemas", className: "schemas-heading", textContent: "Schemas" }), ...schemas.map(([name, schema]) => schemaSection(name, schema, doc)));
  toc.append(el("li", {}, el("a", { href: "#schemas", textContent: "Schemas" })));
  contents.replaceChildren(el("h2", { textContent: "Contents" }), toc);
  contents.hidden = false;
  article.setAttribute("aria-busy", "false");
  // The page was opened at an anchor that exists only now.
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

try {
  const response = await fetch(DOCUMENT_URL, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`the service answered ${response.status} for ${DOCUMENT_URL}`);
  render(await response.json());
} catch (error) {
  status.textContent = `Could not load the API's description: ${error.message}`;
  status.classList.add("reference-error");
  article.setAttribute("aria-busy", "false");
}
