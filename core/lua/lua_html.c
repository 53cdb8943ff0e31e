/* lua_html.c — the `_html` bindings under lua/html.lua: parse HTML5 with gumbo, walk the tree.
 * A document userdata owns the GumboOutput (freed by __gc/__close) and keeps the source string and
 * an element cache as user values; an element userdata points into the tree and keeps its document
 * alive through its user value, so a node is never used after the tree is freed. */
#include <gumbo.h>
#include <lauxlib.h>
#include <lua.h>
#include <string.h>
#include <strings.h>

#include "lua_bindings.h"

#define HTML_DOCUMENT "luafetch.html.Document"
#define HTML_ELEMENT "luafetch.html.Element"

/* Document user values: the source (gumbo's original_* pieces point into it) and a weak-valued
 * table node pointer -> element, so one node is always the same Lua value while it is in use. */
enum { DOC_UV_SOURCE = 1, DOC_UV_CACHE = 2, DOC_NUV = 2 };

struct html_doc {
    GumboOutput *out; /* NULL once closed */
    GumboOptions options;
};

struct html_el {
    const GumboNode *node; /* valid while the document (user value 1) is open */
};

/* --- tree helpers (no Lua) ------------------------------------------------ */

static int is_element(const GumboNode *n)
{
    return n->type == GUMBO_NODE_ELEMENT || n->type == GUMBO_NODE_TEMPLATE;
}

static const GumboVector *children_of(const GumboNode *n)
{
    if (n->type == GUMBO_NODE_DOCUMENT)
        return &n->v.document.children;
    if (is_element(n))
        return &n->v.element.children;
    return NULL;
}

/* The sibling after n, or NULL. Checks index_within_parent before trusting it. */
static const GumboNode *next_sibling(const GumboNode *n)
{
    const GumboNode *p = n->parent;
    const GumboVector *kids = p ? children_of(p) : NULL;
    if (!kids)
        return NULL;
    size_t i = n->index_within_parent;
    if (i >= kids->length || kids->data[i] != n) {
        for (i = 0; i < kids->length && kids->data[i] != n; i++)
            ;
        if (i == kids->length)
            return NULL;
    }
    return i + 1 < kids->length ? kids->data[i + 1] : NULL;
}

/* The node after n in document order inside root's subtree; with skip, n's children are passed
 * over. Iterative, so deeply nested markup cannot exhaust the C stack. */
static const GumboNode *next_node(const GumboNode *root, const GumboNode *n, int skip)
{
    const GumboVector *kids = children_of(n);
    if (!skip && kids && kids->length > 0)
        return kids->data[0];
    while (n != root && n) {
        const GumboNode *s = next_sibling(n);
        if (s)
            return s;
        n = n->parent;
    }
    return NULL;
}

/* The name of an element gumbo does not know (GUMBO_TAG_UNKNOWN), as written in the source. */
static GumboStringPiece unknown_tag_name(const GumboElement *e)
{
    GumboStringPiece piece = e->original_tag;
    if (piece.length > 0)
        gumbo_tag_from_original_text(&piece);
    return piece;
}

static int tag_matches(const GumboNode *n, GumboTag tag, const char *name, size_t len)
{
    if (!is_element(n))
        return 0;
    if (tag != GUMBO_TAG_UNKNOWN)
        return n->v.element.tag == tag;
    if (n->v.element.tag != GUMBO_TAG_UNKNOWN)
        return 0;
    GumboStringPiece piece = unknown_tag_name(&n->v.element);
    return piece.length == len && strncasecmp(piece.data, name, len) == 0;
}

/* Elements whose text is not page text: skipped by text() below them. */
static int is_hidden_text(const GumboNode *n)
{
    if (!is_element(n))
        return 0;
    GumboTag t = n->v.element.tag;
    return t == GUMBO_TAG_SCRIPT || t == GUMBO_TAG_STYLE || t == GUMBO_TAG_TEMPLATE || n->type == GUMBO_NODE_TEMPLATE;
}

/* Elements that start a new line of text when rendered: text() separates them by a space. */
static int is_block(const GumboNode *n)
{
    if (!is_element(n))
        return 0;
    switch (n->v.element.tag) {
    case GUMBO_TAG_ADDRESS: case GUMBO_TAG_ARTICLE: case GUMBO_TAG_ASIDE: case GUMBO_TAG_BLOCKQUOTE:
    case GUMBO_TAG_BR: case GUMBO_TAG_CAPTION: case GUMBO_TAG_DD: case GUMBO_TAG_DIV: case GUMBO_TAG_DL:
    case GUMBO_TAG_DT: case GUMBO_TAG_FIELDSET: case GUMBO_TAG_FIGCAPTION: case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_FOOTER: case GUMBO_TAG_FORM: case GUMBO_TAG_H1: case GUMBO_TAG_H2: case GUMBO_TAG_H3:
    case GUMBO_TAG_H4: case GUMBO_TAG_H5: case GUMBO_TAG_H6: case GUMBO_TAG_HEADER: case GUMBO_TAG_HR:
    case GUMBO_TAG_LI: case GUMBO_TAG_MAIN: case GUMBO_TAG_NAV: case GUMBO_TAG_OL: case GUMBO_TAG_OPTION:
    case GUMBO_TAG_P: case GUMBO_TAG_PRE: case GUMBO_TAG_SECTION: case GUMBO_TAG_TABLE: case GUMBO_TAG_TD:
    case GUMBO_TAG_TH: case GUMBO_TAG_TR: case GUMBO_TAG_UL:
        return 1;
    default:
        return 0;
    }
}

/* --- documents ------------------------------------------------------------ */

static struct html_doc *check_doc(lua_State *L, int idx)
{
    struct html_doc *d = luaL_checkudata(L, idx, HTML_DOCUMENT);
    if (!d->out)
        luaL_error(L, "html document is closed");
    return d;
}

/* _html.parse(str) -> document */
static int l_parse(lua_State *L)
{
    size_t len;
    const char *src = luaL_checklstring(L, 1, &len);
    struct html_doc *d = lua_newuserdatauv(L, sizeof *d, DOC_NUV);
    d->out = NULL;
    d->options = kGumboDefaultOptions;
    d->options.max_errors = 0; /* keep no parse-error list: nothing reads it */
    luaL_setmetatable(L, HTML_DOCUMENT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, DOC_UV_SOURCE);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, -2, DOC_UV_CACHE);
    d->out = gumbo_parse_with_options(&d->options, src, len);
    if (!d->out)
        return luaL_error(L, "html.parse: out of memory");
    /* The tree lives outside Lua's heap: tell the collector about it, roughly (a few times the
     * source), so that documents dropped in a loop are collected in time. */
    if (len >= 4096)
        lua_gc(L, LUA_GCSTEP, (int)((len >> 10) * 4 > 1 << 20 ? 1 << 20 : (len >> 10) * 4));
    return 1;
}

/* __gc, __close and doc:close(): frees the tree now; elements then raise "closed". */
static int l_doc_close(lua_State *L)
{
    struct html_doc *d = luaL_checkudata(L, 1, HTML_DOCUMENT);
    if (d->out) {
        gumbo_destroy_output(&d->options, d->out);
        d->out = NULL;
    }
    return 0;
}

static int l_doc_closed(lua_State *L)
{
    struct html_doc *d = luaL_checkudata(L, 1, HTML_DOCUMENT);
    lua_pushboolean(L, d->out == NULL);
    return 1;
}

/* Pushes the element of node, made once per node while it is referenced; doc_idx is absolute. */
static void push_element(lua_State *L, int doc_idx, const GumboNode *node)
{
    lua_getiuservalue(L, doc_idx, DOC_UV_CACHE);
    if (lua_rawgetp(L, -1, node) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    struct html_el *e = lua_newuserdatauv(L, sizeof *e, 1);
    e->node = node;
    luaL_setmetatable(L, HTML_ELEMENT);
    lua_pushvalue(L, doc_idx);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, node);
    lua_remove(L, -2);
}

/* doc:root() -> the <html> element */
static int l_doc_root(lua_State *L)
{
    struct html_doc *d = check_doc(L, 1);
    push_element(L, 1, d->out->root);
    return 1;
}

/* --- elements ------------------------------------------------------------- */

/* The node of the element at idx (document still open); pushes nothing. */
static const GumboNode *check_el(lua_State *L, int idx)
{
    struct html_el *e = luaL_checkudata(L, idx, HTML_ELEMENT);
    lua_getiuservalue(L, idx, 1);
    struct html_doc *d = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!d || !d->out)
        luaL_error(L, "html document is closed");
    return e->node;
}

/* The node behind a document or an element argument, and pushes the document (for
 * push_element) on top of the stack. */
static const GumboNode *check_scope(lua_State *L, int idx)
{
    struct html_doc *d = luaL_testudata(L, idx, HTML_DOCUMENT);
    if (d) {
        check_doc(L, idx);
        lua_pushvalue(L, idx);
        return d->out->document;
    }
    const GumboNode *n = check_el(L, idx);
    lua_getiuservalue(L, idx, 1);
    return n;
}

static void push_tag(lua_State *L, const GumboNode *n)
{
    if (n->v.element.tag != GUMBO_TAG_UNKNOWN) {
        lua_pushstring(L, gumbo_normalized_tagname(n->v.element.tag));
        return;
    }
    GumboStringPiece piece = unknown_tag_name(&n->v.element);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, piece.length);
    for (size_t i = 0; i < piece.length; i++) {
        char c = piece.data[i];
        p[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    luaL_pushresultsize(&b, piece.length);
}

/* el:attr(name) -> value or nil (names are case-insensitive) */
static int l_el_attr(lua_State *L)
{
    const GumboNode *n = check_el(L, 1);
    const char *name = luaL_checkstring(L, 2);
    GumboAttribute *a = gumbo_get_attribute(&n->v.element.attributes, name);
    if (a)
        lua_pushstring(L, a->value);
    else
        lua_pushnil(L);
    return 1;
}

/* el:attrs() -> { name = value, ... } */
static int l_el_attrs(lua_State *L)
{
    const GumboNode *n = check_el(L, 1);
    const GumboVector *attrs = &n->v.element.attributes;
    lua_createtable(L, 0, (int)attrs->length);
    for (size_t i = 0; i < attrs->length; i++) {
        const GumboAttribute *a = attrs->data[i];
        lua_pushstring(L, a->value);
        lua_setfield(L, -2, a->name);
    }
    return 1;
}

/* Adds the text of one node, collapsing white space when readable. */
struct text_state {
    luaL_Buffer b;
    int readable, any, space;
};

static void add_text(struct text_state *ts, const char *s)
{
    if (!ts->readable) {
        luaL_addstring(&ts->b, s);
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            ts->space = ts->any;
            continue;
        }
        if (ts->space)
            luaL_addchar(&ts->b, ' ');
        luaL_addchar(&ts->b, (char)c);
        ts->any = 1;
        ts->space = 0;
    }
}

/* el:text([raw]) -> the text below el. Readable (default): white space collapsed and trimmed,
 * block elements and <br> apart, <script>/<style>/<template> below el left out. raw: every text
 * node as written (after entity decoding), like the DOM's textContent. */
static int l_el_text(lua_State *L)
{
    const GumboNode *root = check_el(L, 1);
    struct text_state ts = { .readable = !lua_toboolean(L, 2), .any = 0, .space = 0 };
    luaL_buffinit(L, &ts.b);
    const GumboNode *n = root;
    while (n) {
        int skip = 0;
        switch (n->type) {
        case GUMBO_NODE_TEXT:
        case GUMBO_NODE_CDATA:
        case GUMBO_NODE_WHITESPACE:
            add_text(&ts, n->v.text.text);
            break;
        case GUMBO_NODE_ELEMENT:
        case GUMBO_NODE_TEMPLATE:
            skip = n != root && ts.readable && is_hidden_text(n);
            if (is_block(n))
                ts.space = ts.any;
            break;
        default:
            break;
        }
        n = next_node(root, n, skip);
    }
    luaL_pushresult(&ts.b);
    return 1;
}

/* el:children() -> array of the child elements */
static int l_el_children(lua_State *L)
{
    const GumboNode *n = check_scope(L, 1);
    int doc = lua_gettop(L);
    const GumboVector *kids = children_of(n);
    lua_createtable(L, (int)kids->length, 0);
    lua_Integer k = 0;
    for (size_t i = 0; i < kids->length; i++) {
        if (is_element(kids->data[i])) {
            push_element(L, doc, kids->data[i]);
            lua_rawseti(L, -2, ++k);
        }
    }
    return 1;
}

/* el:parent() -> the parent element, or nil at the top */
static int l_el_parent(lua_State *L)
{
    const GumboNode *n = check_el(L, 1);
    lua_getiuservalue(L, 1, 1);
    if (n->parent && is_element(n->parent))
        push_element(L, lua_gettop(L), n->parent);
    else
        lua_pushnil(L);
    return 1;
}

/* x:descendants([tag]) -> array of the elements below x (document or element) in document
 * order, only those named tag when given */
static int l_descendants(lua_State *L)
{
    lua_settop(L, 2); /* check_scope pushes the document: keep argument 2 where it is */
    const GumboNode *root = check_scope(L, 1);
    int doc = lua_gettop(L);
    size_t len = 0;
    const char *name = luaL_optlstring(L, 2, NULL, &len);
    GumboTag tag = name ? gumbo_tagn_enum(name, len) : GUMBO_TAG_UNKNOWN;
    lua_newtable(L);
    lua_Integer k = 0;
    for (const GumboNode *n = next_node(root, root, 0); n; n = next_node(root, n, 0)) {
        if (name ? tag_matches(n, tag, name, len) : is_element(n)) {
            push_element(L, doc, n);
            lua_rawseti(L, -2, ++k);
        }
    }
    return 1;
}

/* __index: the field `tag`, else a method (the methods table is upvalue 1). */
static int l_el_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "tag") == 0) {
        push_tag(L, check_el(L, 1));
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

/* tostring(el) -> "html.Element<div#id.class>" (or closed) */
static int l_el_tostring(lua_State *L)
{
    struct html_el *e = luaL_checkudata(L, 1, HTML_ELEMENT);
    lua_getiuservalue(L, 1, 1);
    struct html_doc *d = lua_touserdata(L, -1);
    if (!d || !d->out) {
        lua_pushliteral(L, "html.Element<closed>");
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "html.Element<");
    push_tag(L, e->node);
    luaL_addvalue(&b);
    GumboAttribute *id = gumbo_get_attribute(&e->node->v.element.attributes, "id");
    if (id) {
        luaL_addchar(&b, '#');
        luaL_addstring(&b, id->value);
    }
    GumboAttribute *cls = gumbo_get_attribute(&e->node->v.element.attributes, "class");
    if (cls && cls->value[0]) {
        luaL_addchar(&b, '.');
        luaL_addstring(&b, cls->value);
    }
    luaL_addchar(&b, '>');
    luaL_pushresult(&b);
    return 1;
}

/* --- module --------------------------------------------------------------- */

int luaopen_luafetch_html(lua_State *L)
{
    static const luaL_Reg doc_methods[] = {
        { "root", l_doc_root }, { "close", l_doc_close }, { "closed", l_doc_closed },
        { "descendants", l_descendants }, { "children", l_el_children }, { NULL, NULL },
    };
    static const luaL_Reg el_methods[] = {
        { "attr", l_el_attr }, { "attrs", l_el_attrs }, { "text", l_el_text },
        { "children", l_el_children }, { "parent", l_el_parent }, { "descendants", l_descendants },
        { NULL, NULL },
    };
    static const luaL_Reg funcs[] = { { "parse", l_parse }, { NULL, NULL } };

    luaL_newlib(L, funcs);

    luaL_newmetatable(L, HTML_DOCUMENT);
    luaL_newlib(L, doc_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "document_methods"); /* html.lua adds Lua methods here */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_doc_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_doc_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    luaL_newmetatable(L, HTML_ELEMENT);
    luaL_newlib(L, el_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "element_methods");
    lua_pushcclosure(L, l_el_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_el_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    return 1;
}
