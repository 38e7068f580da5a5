/* parser.y — the celo grammar: a pure, reentrant Bison parser with byte-offset locations. */
%define api.pure full
%define api.prefix {celo_yy}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {void *scanner}
%parse-param {parse_ctx *ctx}

%code requires {
#include "ast.h"
#define CELO_YYLTYPE span
#define CELO_YYLTYPE_IS_DECLARED 1

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                                                     \
    do {                                                                                                \
        if (N) {                                                                                        \
            (Cur).lo = YYRHSLOC(Rhs, 1).lo;                                                             \
            (Cur).hi = YYRHSLOC(Rhs, N).hi;                                                             \
        } else {                                                                                        \
            (Cur).lo = (Cur).hi = YYRHSLOC(Rhs, 0).hi;                                                  \
        }                                                                                               \
    } while (0)
}

%code provides {
int celo_yylex(CELO_YYSTYPE *lval, CELO_YYLTYPE *lloc, void *scanner);
void celo_yyerror(CELO_YYLTYPE *loc, void *scanner, parse_ctx *ctx, const char *msg);
}

%code {
#include "diag.h"
#include <stdio.h>
#include <string.h>

static expr *mk(parse_ctx *c, expr_kind k, span sp)
{
    expr *e = arena_alloc(c->ar, sizeof *e);
    e->kind = k;
    e->sp = sp;
    return e;
}
/* Every later pass walks expressions recursively: bound their depth here, once. A node over the limit is
 * reported where the limit is first crossed and replaced by a leaf that keeps the depth (so the tree stays
 * shallow and its ancestors stay quiet). */
#define MAX_EXPR_DEPTH 256
static expr *fin(parse_ctx *c, expr *e)
{
    int d = 0, over = 0;
    const expr *kids[2] = {e->a, e->b};
    for (int i = 0; i < 2; i++)
        if (kids[i]) {
            d = kids[i]->depth > d ? kids[i]->depth : d;
            over |= kids[i]->depth > MAX_EXPR_DEPTH;
        }
    for (const arg *a = e->args; a; a = a->next) {
        d = a->value->depth > d ? a->value->depth : d;
        over |= a->value->depth > MAX_EXPR_DEPTH;
    }
    e->depth = d + 1;
    if (e->depth <= MAX_EXPR_DEPTH)
        return e;
    if (!over) {
        diag_error(c->file, e->sp, "expression nests too deeply (more than %d levels)", MAX_EXPR_DEPTH);
        c->nerrors++;
    }
    expr *leaf = mk(c, EX_NUM, e->sp);
    leaf->depth = MAX_EXPR_DEPTH + 1;
    return leaf;
}
static expr *bin(parse_ctx *c, ast_op op, expr *a, expr *b, span sp)
{
    expr *e = mk(c, EX_BINARY, sp);
    e->op = op;
    e->a = a;
    e->b = b;
    return fin(c, e);
}
static stmt *mkstmt(parse_ctx *c, stmt_kind k, span sp)
{
    stmt *s = arena_alloc(c->ar, sizeof *s);
    s->kind = k;
    s->sp = sp;
    return s;
}
static def *mkdef(parse_ctx *c, def_kind k, span sp)
{
    def *d = arena_alloc(c->ar, sizeof *d);
    d->kind = k;
    d->sp = sp;
    d->file = c->file;
    return d;
}
static int learned_dim(parse_ctx *c, double v, span sp)
{
    if (v < 1 || v > 4096 || v != (int)v) {
        diag_error(c->file, sp, "a learned width must be an integer from 1 to 4096");
        c->nerrors++;
        return 1;
    }
    return (int)v;
}
static void append_def(parse_ctx *c, def *d)
{
    def **pp = &c->defs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
}
}

%union {
    double num;
    char *str;
    expr *ex;
    arg *ar;
    stmt *st;
    statevar *sv;
    param *pa;
    def *df;
    int op;
    prop *pr;
    pval *pv;
    parg *pa2;
}

%token <num> NUMBER
%token <str> NAME STRING
%token OPTIMIZER SCHEDULE TRANSFORM MODEL IMPORT STATE LEARNED ARROW CHAIN FOR IF ELSE IN AND OR NOT DOTDOT ADDEQ SUBEQ MULEQ DIVEQ LE GE EQ NE
%token BADCHAR

%type <ex> expr
%type <ar> args arglist arg chainlist idxlist
%type <st> stmts stmt block dims ifstmt
%type <sv> statevars statevar
%type <pa> params paramlist param
%type <op> assignop
%type <df> definition
%type <pr> props prop lopts
%type <pv> pvalue
%type <pa2> pargs parg pitems
%type <str> path

%left OR
%left AND
%precedence NOT
%nonassoc '<' '>' LE GE EQ NE
%left '+' '-'
%left '*' '/'
%precedence UMINUS
%right '^'

%destructor { } <*>

%%
file: %empty
    | file definition   { if ($2) append_def(ctx, $2); }
    | file error ';'    { }
    | file error '}'    { }
    ;

definition:
      IMPORT STRING ';' {
        $$ = NULL; /* an unterminated string (NULL) was reported by the scanner */
        if ($2) { $$ = mkdef(ctx, DEF_IMPORT, @$); $$->name = $2; $$->name_span = @2; } }
    | OPTIMIZER NAME '(' params ')' block {
        $$ = mkdef(ctx, DEF_OPTIMIZER, @$); $$->name = $2; $$->name_span = @2; $$->params = $4; $$->body = $6; }
    | TRANSFORM NAME '(' params ')' block {
        $$ = mkdef(ctx, DEF_TRANSFORM, @$); $$->name = $2; $$->name_span = @2; $$->params = $4; $$->body = $6; }
    | OPTIMIZER NAME '(' params ')' '=' CHAIN '(' chainlist ')' ';' {
        $$ = mkdef(ctx, DEF_OPTIMIZER, @$); $$->name = $2; $$->name_span = @2; $$->params = $4;
        $$->chain = $9; }
    | OPTIMIZER NAME '(' params ')' '=' CHAIN '(' ')' ';' {
        (void)$2;
        (void)$4;
        span sp = {@8.lo, @9.hi};
        diag_error(ctx->file, sp, "chain(…) needs at least one transform, like chain(scale_by_adam(), scale(s = -lr))");
        ctx->nerrors++;
        $$ = NULL; }
    | SCHEDULE NAME '=' expr ';' {
        $$ = mkdef(ctx, DEF_SCHEDULE, @$); $$->name = $2; $$->name_span = @2; $$->value = $4; }
    | SCHEDULE NAME '(' params ')' '=' expr ';' {
        $$ = mkdef(ctx, DEF_SCHEDULE, @$); $$->name = $2; $$->name_span = @2; $$->params = $4; $$->value = $7; }
    | MODEL NAME '(' params ')' block {
        $$ = mkdef(ctx, DEF_MODEL, @$); $$->name = $2; $$->name_span = @2; $$->params = $4; $$->body = $6; }
    | MODEL NAME block {
        $$ = mkdef(ctx, DEF_MODEL, @$); $$->name = $2; $$->name_span = @2; $$->body = $3; }
    | NAME NAME '{' props '}' {
        $$ = mkdef(ctx, DEF_BLOCK, @$); $$->block = $1; $$->block_span = @1; $$->name = $2; $$->name_span = @2;
        $$->props = $4; }
    ;

/* ---- pipeline blocks: task, train, sweep, compare ---- */
props: %empty                   { $$ = NULL; }
    | props prop                { if ($2) { prop **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $2; } $$ = $1; }
    | props error ';'           { $$ = $1; }
    ;

prop: NAME '=' pvalue ';'       { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = $1; $$->key_span = @1;
                                  $$->value = $3; $$->sp = @$; }
    | NAME pvalue ';'           { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = $1; $$->key_span = @1;
                                  $$->value = $2; $$->sp = @$; }
    | OPTIMIZER '=' pvalue ';'  { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = "optimizer"; $$->key_span = @1;
                                  $$->value = $3; $$->sp = @$; }
    | SCHEDULE '=' pvalue ';'   { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = "schedule"; $$->key_span = @1;
                                  $$->value = $3; $$->sp = @$; }
    | MODEL '=' pvalue ';'      { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = "model"; $$->key_span = @1;
                                  $$->value = $3; $$->sp = @$; }
    | MODEL pvalue ';'          { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = "model"; $$->key_span = @1;
                                  $$->value = $2; $$->sp = @$; }
    | NAME NAME '=' pvalue ';'  { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = $1; $$->key_span = @1;
                                  $$->word = $2; $$->word_span = @2; $$->value = $4; $$->sp = @$; }
    | NAME NAME pvalue ';'      { $$ = arena_alloc(ctx->ar, sizeof(prop)); $$->key = $1; $$->key_span = @1;
                                  $$->word = $2; $$->word_span = @2; $$->value = $3; $$->sp = @$; }
    ;

pvalue: NUMBER                  { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_NUM; $$->num = $1; $$->sp = @$; }
    | '-' NUMBER                { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_NUM; $$->num = -$2; $$->sp = @$; }
    | STRING                    { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_STR; $$->str = $1 ? $1 : ""; $$->sp = @$; }
    | NAME                      { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_NAME; $$->str = $1; $$->sp = @$; }
    | NAME '(' ')'              { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_CALL; $$->str = $1; $$->sp = @$; }
    | NAME '(' pargs ')'        { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_CALL; $$->str = $1; $$->sp = @$;
                                  $$->args = $3; for (parg *a = $3; a; a = a->next) $$->nargs++; }
    | '[' ']'                   { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_LIST; $$->sp = @$; }
    | '[' pitems ']'            { $$ = arena_alloc(ctx->ar, sizeof(pval)); $$->kind = PV_LIST; $$->sp = @$;
                                  $$->args = $2; for (parg *a = $2; a; a = a->next) $$->nargs++; }
    ;

pargs: parg                     { $$ = $1; }
    | pargs ',' parg            { parg **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $3; $$ = $1; }
    ;
parg: pvalue                    { $$ = arena_alloc(ctx->ar, sizeof(parg)); $$->value = $1; }
    | NAME '=' pvalue           { $$ = arena_alloc(ctx->ar, sizeof(parg)); $$->name = $1; $$->name_span = @1; $$->value = $3; }
    | IN '=' pvalue             { $$ = arena_alloc(ctx->ar, sizeof(parg)); $$->name = "in"; $$->name_span = @1; $$->value = $3; }
    | STATE '=' pvalue          { $$ = arena_alloc(ctx->ar, sizeof(parg)); $$->name = "state"; $$->name_span = @1; $$->value = $3; }
    ;
pitems: pvalue                  { $$ = arena_alloc(ctx->ar, sizeof(parg)); $$->value = $1; }
    | pitems ',' pvalue         { parg *a = arena_alloc(ctx->ar, sizeof(parg)); a->value = $3;
                                  parg **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = a; $$ = $1; }
    ;

chainlist: expr                 { $$ = arena_alloc(ctx->ar, sizeof(arg)); $$->value = $1; }
    | chainlist ',' expr        { arg *a = arena_alloc(ctx->ar, sizeof(arg)); a->value = $3;
                                  arg **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = a; $$ = $1; }
    ;

params: %empty { $$ = NULL; } | paramlist { $$ = $1; } ;
paramlist: param                { $$ = $1; }
    | paramlist ',' param       { param **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $3; $$ = $1; }
    ;
param: NAME '=' expr            { $$ = arena_alloc(ctx->ar, sizeof(param)); $$->name = $1; $$->sp = @1; $$->def = $3; }
    | NAME                      { $$ = arena_alloc(ctx->ar, sizeof(param)); $$->name = $1; $$->sp = @1; }
    | IN '=' expr               { $$ = arena_alloc(ctx->ar, sizeof(param)); $$->name = "in"; $$->sp = @1; $$->def = $3; }
    | IN                        { $$ = arena_alloc(ctx->ar, sizeof(param)); $$->name = "in"; $$->sp = @1; }
    ;

block: '{' stmts '}'            { $$ = $2; } ;

stmts: %empty                   { $$ = NULL; }
    | stmts stmt                { if ($2) { stmt **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $2; } $$ = $1; }
    | stmts error ';'           { $$ = $1; }
    ;

stmt: STATE statevars ';'       { $$ = mkstmt(ctx, ST_STATE, @$); $$->vars = $2; }
    | LEARNED NAME NAME '[' dims ']' NAME lopts ';' {
                                  $$ = $5; $$->sp = @$; $$->lkind = $2; $$->lkind_span = @2; $$->var = $3;
                                  $$->var_span = @3; $$->dims_span = @5; $$->act = $7; $$->act_span = @7;
                                  $$->lopts = $8; }
    | LEARNED NAME NAME '[' dims ']' lopts ';' {
                                  $$ = $5; $$->sp = @$; $$->lkind = $2; $$->lkind_span = @2; $$->var = $3;
                                  $$->var_span = @3; $$->dims_span = @5; $$->act_span = @6; $$->lopts = $7; }
    | LEARNED NAME '[' dims ']' lopts ';' {
                                  $$ = $4; $$->sp = @$; $$->var = $2; $$->var_span = @2; $$->dims_span = @4;
                                  $$->lopts = $6; }
    | NAME assignop expr ';'    { $$ = mkstmt(ctx, ST_ASSIGN, @$); $$->target = $1; $$->target_span = @1;
                                  $$->aop = $2; $$->value = $3; }
    | NAME '[' expr ']' assignop expr ';' {
                                  $$ = mkstmt(ctx, ST_ASSIGN, @$); $$->target = $1; $$->target_span = @1;
                                  $$->index = $3; $$->aop = $5; $$->value = $6; }
    | NAME '[' expr ']' '.' path assignop expr ';' {
                                  $$ = mkstmt(ctx, ST_ASSIGN, @$); $$->target = $1; $$->target_span = @1;
                                  $$->target_span.hi = @6.hi; $$->index = $3; $$->suffix = $6; $$->aop = $7;
                                  $$->value = $8; }
    | FOR NAME IN expr DOTDOT expr block {
                                  $$ = mkstmt(ctx, ST_FOR, @$); $$->var = $2; $$->var_span = @2;
                                  $$->lo = $4; $$->hi = $6; $$->body = $7; }
    | ifstmt                    { $$ = $1; }
    | NAME '(' args ')' ';'     { expr *c = mk(ctx, EX_CALL, @1); c->sp.hi = @4.hi; c->name = $1; c->name_span = @1;
                                  c->args = $3; for (arg *a = $3; a; a = a->next) c->nargs++;
                                  $$ = mkstmt(ctx, ST_CALL, @$); $$->value = fin(ctx, c); }
    ;

/* if on the tensor's class; `else if` nests an ST_IF as the else branch */
ifstmt: IF expr block           { $$ = mkstmt(ctx, ST_IF, @$); $$->value = $2; $$->body = $3; }
    | IF expr block ELSE block  { $$ = mkstmt(ctx, ST_IF, @$); $$->value = $2; $$->body = $3; $$->els = $5; }
    | IF expr block ELSE ifstmt { $$ = mkstmt(ctx, ST_IF, @$); $$->value = $2; $$->body = $3; $$->els = $5; }
    ;

/* the widths of a learned part: n, or n -> m -> ... (an MLP's layers), or n, m, ... (a tensor's shape); each an
 * integer from 1 to 4096 */
dims: NUMBER                    { $$ = mkstmt(ctx, ST_LEARNED, @$); $$->ndims = 1;
                                  $$->dims[0] = learned_dim(ctx, $1, @1); }
    | dims ARROW NUMBER         { $$ = $1; $$->dims_arrow = 1;
                                  if ($$->ndims == 16) {
                                      diag_error(ctx->file, @3, "an MLP has at most 16 layer widths");
                                      ctx->nerrors++;
                                  } else $$->dims[$$->ndims++] = learned_dim(ctx, $3, @3); }
    | dims ',' NUMBER           { $$ = $1; $$->dims_comma = 1;
                                  if ($$->ndims == 16) {
                                      diag_error(ctx->file, @3, "a learned tensor has at most 4 dimensions");
                                      ctx->nerrors++;
                                  } else $$->dims[$$->ndims++] = learned_dim(ctx, $3, @3); }
    ;

/* options after a learned declaration: , name = "a/b", inputs = [1, 3], lead = 1, init = normal */
lopts: %empty                   { $$ = NULL; }
    | lopts ',' NAME '=' pvalue { prop *o = arena_alloc(ctx->ar, sizeof(prop)); o->key = $3; o->key_span = @3;
                                  o->value = $5; o->sp = @$; o->sp.lo = @3.lo;
                                  prop **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = o; $$ = $1; }
    ;

assignop: '=' { $$ = '='; } | ADDEQ { $$ = '+'; } | SUBEQ { $$ = '-'; } | MULEQ { $$ = '*'; } | DIVEQ { $$ = '/'; } ;

statevars: statevar             { $$ = $1; }
    | statevars ',' statevar    { statevar **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $3; $$ = $1; }
    ;
statevar: NAME '=' expr         { $$ = arena_alloc(ctx->ar, sizeof(statevar)); $$->name = $1; $$->sp = @1; $$->init = $3; }
    | NAME '[' NUMBER ']' '=' expr {
                                  $$ = arena_alloc(ctx->ar, sizeof(statevar)); $$->name = $1; $$->sp = @1; $$->init = $6;
                                  if ($3 < 1 || $3 > 1024 || $3 != (int)$3) {
                                      diag_error(ctx->file, @3, "state vector size must be an integer from 1 to 1024");
                                      ctx->nerrors++; $$->size = 1;
                                  } else $$->size = (int)$3; }
    ;

expr: NUMBER                    { $$ = mk(ctx, EX_NUM, @$); $$->num = $1; }
    | NAME                      { $$ = mk(ctx, EX_NAME, @$); $$->name = $1; $$->name_span = @1; }
    | IN                        { $$ = mk(ctx, EX_NAME, @$); $$->name = "in"; $$->name_span = @1; /* a model's width */ }
    | NAME '[' expr ']'         { $$ = mk(ctx, EX_INDEX, @$); $$->name = $1; $$->name_span = @1; $$->b = $3;
                                  $$ = fin(ctx, $$); }
    | NAME '[' expr ',' idxlist ']' {
                                  $$ = mk(ctx, EX_INDEX, @$); $$->name = $1; $$->name_span = @1; $$->b = $3;
                                  $$->args = arena_alloc(ctx->ar, sizeof(arg)); $$->args->value = $3;
                                  $$->args->next = $5; $$->nargs = 1;
                                  for (arg *a = $5; a; a = a->next) $$->nargs++;
                                  $$ = fin(ctx, $$); }
    | NAME '[' expr ']' '.' path { $$ = mk(ctx, EX_INDEX, @$); $$->name = $1; $$->name_span = @1; $$->b = $3;
                                  $$->suffix = $6; $$ = fin(ctx, $$); }
    | NAME '(' args ')'         { $$ = mk(ctx, EX_CALL, @$); $$->name = $1; $$->name_span = @1; $$->args = $3;
                                  for (arg *a = $3; a; a = a->next) $$->nargs++;
                                  $$ = fin(ctx, $$); }
    | NAME '(' STRING ')'       { $$ = mk(ctx, EX_CALL, @$); $$->name = $1; $$->name_span = @1; $$->str = $3 ? $3 : "";
                                  $$ = fin(ctx, $$); }
    | '(' expr ')'              { $$ = $2; }
    | '-' expr %prec UMINUS     { $$ = mk(ctx, EX_UNARY, @$); $$->op = OP_NEG; $$->a = $2; $$ = fin(ctx, $$); }
    | '+' expr %prec UMINUS     { $$ = $2; }
    | NOT expr                  { $$ = mk(ctx, EX_UNARY, @$); $$->op = OP_NOT; $$->a = $2; $$ = fin(ctx, $$); }
    | expr '+' expr             { $$ = bin(ctx, OP_ADD, $1, $3, @$); }
    | expr '-' expr             { $$ = bin(ctx, OP_SUB, $1, $3, @$); }
    | expr '*' expr             { $$ = bin(ctx, OP_MUL, $1, $3, @$); }
    | expr '/' expr             { $$ = bin(ctx, OP_DIV, $1, $3, @$); }
    | expr '^' expr             { $$ = bin(ctx, OP_POW, $1, $3, @$); }
    | expr '<' expr             { $$ = bin(ctx, OP_LT, $1, $3, @$); }
    | expr '>' expr             { $$ = bin(ctx, OP_GT, $1, $3, @$); }
    | expr LE expr              { $$ = bin(ctx, OP_LE, $1, $3, @$); }
    | expr GE expr              { $$ = bin(ctx, OP_GE, $1, $3, @$); }
    | expr EQ expr              { $$ = bin(ctx, OP_EQ, $1, $3, @$); }
    | expr NE expr              { $$ = bin(ctx, OP_NE, $1, $3, @$); }
    | expr AND expr             { $$ = bin(ctx, OP_AND, $1, $3, @$); }
    | expr OR expr              { $$ = bin(ctx, OP_OR, $1, $3, @$); }
    ;

/* a model's dotted tap name after an index: h[l].mlp.c_fc */
path: NAME                      { $$ = $1; }
    | path '.' NAME             { size_t n = strlen($1) + strlen($3) + 2; $$ = arena_alloc(ctx->ar, n);
                                  snprintf($$, n, "%s.%s", $1, $3); }
    ;

args: %empty { $$ = NULL; } | arglist { $$ = $1; } ;
/* the second and later indices of W[k, j] */
idxlist: expr                   { $$ = arena_alloc(ctx->ar, sizeof(arg)); $$->value = $1; }
    | idxlist ',' expr          { arg *a = arena_alloc(ctx->ar, sizeof(arg)); a->value = $3;
                                  arg **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = a; $$ = $1; }
    ;
arglist: arg                    { $$ = $1; }
    | arglist ',' arg           { arg **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $3; $$ = $1; }
    ;
arg: expr                       { $$ = arena_alloc(ctx->ar, sizeof(arg)); $$->value = $1; }
    | NAME '=' expr             { $$ = arena_alloc(ctx->ar, sizeof(arg)); $$->name = $1; $$->name_span = @1; $$->value = $3; }
    | STATE '=' expr            { $$ = arena_alloc(ctx->ar, sizeof(arg)); $$->name = "state"; $$->name_span = @1; $$->value = $3; } /* mamba(…, state = N) */
    ;
%%

/* ---- syntax errors ----
 * Bison knows the lookahead and the tokens it expected; the source text tells the rest: a statement that ends
 * without its ';' at the end of a line, and the unmatched '(' or '{' of an error at the end of a block. */

/* The end of the last token before offset lo (skipping blanks and # comments), or -1. */
static int32_t prev_token_end(const srcfile *f, int32_t lo)
{
    int32_t i = lo;
    while (i > 0) {
        int32_t bol = i;
        while (bol > 0 && f->text[bol - 1] != '\n')
            bol--;
        int32_t end = i;
        int instr = 0;
        for (int32_t k = bol; k < i; k++)
            if (f->text[k] == '"')
                instr = !instr;
            else if (f->text[k] == '#' && !instr) {
                end = k;
                break;
            }
        while (end > bol && (f->text[end - 1] == ' ' || f->text[end - 1] == '\t' || f->text[end - 1] == '\r' ||
                             f->text[end - 1] == '\n'))
            end--;
        if (end > bol)
            return end;
        i = bol - 1;
    }
    return -1;
}

/* The innermost bracket `open` left unclosed before offset lo (comments and strings skipped); parentheses
 * never span statements, so for '(' the search restarts at each ';', '{' and '}'. -1 when none. */
static int32_t unclosed(const srcfile *f, int32_t lo, char open)
{
    char close = open == '(' ? ')' : open == '[' ? ']' : '}';
    int32_t stack[64];
    int n = 0, lost = 0;
    for (int32_t i = 0; i < lo && (size_t)i < f->len; i++) {
        char c = f->text[i];
        if (c == '#') {
            while (i + 1 < lo && f->text[i + 1] != '\n')
                i++;
        } else if (c == '"') {
            while (i + 1 < lo && f->text[i + 1] != '"' && f->text[i + 1] != '\n')
                i++;
            i++;
        } else if (c == open) {
            if (n < 64)
                stack[n++] = i;
            else
                lost++;
        } else if (c == close) {
            if (lost)
                lost--;
            else if (n)
                n--;
        } else if (open == '(' && (c == ';' || c == '{' || c == '}'))
            n = lost = 0;
    }
    return n && !lost ? stack[n - 1] : -1;
}

static const char *sym_text(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_NUMBER: return "a number";
    case YYSYMBOL_NAME: return "a name";
    case YYSYMBOL_STRING: return "a string";
    case YYSYMBOL_OPTIMIZER: return "'optimizer'";
    case YYSYMBOL_SCHEDULE: return "'schedule'";
    case YYSYMBOL_TRANSFORM: return "'transform'";
    case YYSYMBOL_MODEL: return "'model'";
    case YYSYMBOL_IMPORT: return "'import'";
    case YYSYMBOL_STATE: return "'state'";
    case YYSYMBOL_LEARNED: return "'learned'";
    case YYSYMBOL_ARROW: return "'->'";
    case YYSYMBOL_CHAIN: return "'chain'";
    case YYSYMBOL_FOR: return "'for'";
    case YYSYMBOL_IF: return "'if'";
    case YYSYMBOL_ELSE: return "'else'";
    case YYSYMBOL_IN: return "'in'";
    case YYSYMBOL_AND: return "'and'";
    case YYSYMBOL_OR: return "'or'";
    case YYSYMBOL_NOT: return "'not'";
    case YYSYMBOL_DOTDOT: return "'..'";
    case YYSYMBOL_ADDEQ: return "'+='";
    case YYSYMBOL_SUBEQ: return "'-='";
    case YYSYMBOL_MULEQ: return "'*='";
    case YYSYMBOL_DIVEQ: return "'/='";
    case YYSYMBOL_LE: return "'<='";
    case YYSYMBOL_GE: return "'>='";
    case YYSYMBOL_EQ: return "'=='";
    case YYSYMBOL_NE: return "'!='";
    default: return yysymbol_name(k); /* single characters: "';'" */
    }
}

static int has(const yysymbol_kind_t *v, int n, yysymbol_kind_t k)
{
    for (int i = 0; i < n; i++)
        if (v[i] == k)
            return 1;
    return 0;
}

#define MAX_SYNTAX_ERRORS 50
#define CH(c) YYTRANSLATE(c) /* the symbol kind of a one-character token */

static int yyreport_syntax_error(const yypcontext_t *yc, void *scanner, parse_ctx *ctx)
{
    (void)scanner;
    yysymbol_kind_t tok = yypcontext_token(yc);
    span at = *yypcontext_location(yc);
    const srcfile *f = ctx->file;
    if (tok == YYSYMBOL_BADCHAR)
        return 0; /* the scanner has said what is wrong with it */
    if (ctx->nerrors >= MAX_SYNTAX_ERRORS) {
        diag_error(f, at, "too many syntax errors; giving up on this file");
        ctx->nerrors++;
        return 2; /* abandons the parse */
    }
    ctx->nerrors++;
    yysymbol_kind_t exp[YYNTOKENS];
    int nexp = yypcontext_expected_tokens(yc, exp, YYNTOKENS);
    if (nexp < 0)
        nexp = 0;

    /* A statement whose ';' is missing at the end of its line. */
    if (has(exp, nexp, CH(';'))) {
        int32_t pe = prev_token_end(f, at.lo);
        if (pe >= 0 && memchr(f->text + pe, '\n', (size_t)(at.lo - pe))) {
            span sp = {pe, pe};
            diag_error(f, sp, "syntax error: missing ';' at the end of the statement");
            return 0;
        }
    }
    /* An unclosed '(' or '{' (or '[') before a token that can only follow the closing one. */
    static const struct { yysymbol_kind_t want; char open; } closers[] = {
        {CH(')'), '('}, {CH(']'), '['}, {CH('}'), '{'}};
    for (size_t i = 0; i < sizeof closers / sizeof closers[0]; i++) {
        if (!has(exp, nexp, closers[i].want))
            continue;
        int ends = closers[i].open == '{' ? tok == YYSYMBOL_YYEOF || tok == YYSYMBOL_OPTIMIZER ||
                                               tok == YYSYMBOL_TRANSFORM || tok == YYSYMBOL_IMPORT ||
                                               tok == YYSYMBOL_SCHEDULE || tok == YYSYMBOL_MODEL
                                          : tok == CH(';') || tok == CH('{') ||
                                               tok == CH('}') || tok == YYSYMBOL_YYEOF;
        int32_t o = ends ? unclosed(f, at.lo, closers[i].open) : -1;
        if (o < 0)
            continue;
        char close = closers[i].open == '(' ? ')' : closers[i].open == '[' ? ']' : '}';
        diag_error(f, at, "syntax error: expected '%c' before %s", close,
                   tok == YYSYMBOL_YYEOF ? "the end of the file" : sym_text(tok));
        span osp = {o, o + 1};
        diag_note(f, osp, "to match this '%c'", closers[i].open);
        return 0;
    }

    /* The general form: what came, and what could have come instead when that is a short list. */
    char got[96];
    int len = at.hi - at.lo;
    if (tok == YYSYMBOL_NAME || tok == YYSYMBOL_NUMBER)
        snprintf(got, sizeof got, "%s '%.*s'", tok == YYSYMBOL_NAME ? "name" : "number", len > 40 ? 40 : len,
                 f->text + at.lo);
    else
        snprintf(got, sizeof got, "%s", sym_text(tok));
    char msg[512];
    int n = snprintf(msg, sizeof msg, "syntax error: unexpected %s", got);
    int top = has(exp, nexp, YYSYMBOL_OPTIMIZER);
    int closer = tok == CH(')') || tok == CH(']') || tok == CH('}');
    if (closer && unclosed(f, at.lo, tok == CH(')') ? '(' : tok == CH(']') ? '[' : '{') < 0)
        snprintf(msg + n, sizeof msg - (size_t)n, " (nothing to close: is there one too many?)");
    else if (top)
        snprintf(msg + n, sizeof msg - (size_t)n,
                 ", expected a definition ('optimizer', 'transform', 'schedule', 'model' or 'import'); statements go "
                 "inside a rule's { … }");
    else if (has(exp, nexp, YYSYMBOL_NAME) && has(exp, nexp, YYSYMBOL_NUMBER) && has(exp, nexp, CH('(')))
        snprintf(msg + n, sizeof msg - (size_t)n, ", expected an expression");
    else if (nexp > 0 && nexp <= 5) {
        n += snprintf(msg + n, sizeof msg - (size_t)n, ", expected ");
        for (int i = 0; i < nexp && n < (int)sizeof msg; i++)
            n += snprintf(msg + n, sizeof msg - (size_t)n, "%s%s", i == 0 ? "" : i == nexp - 1 ? " or " : ", ",
                          sym_text(exp[i]));
    }
    diag_error(f, at, "%s", msg);
    return 0;
}

/* Only for what the parser cannot recover from: its stack is full (brackets nested thousands deep). */
void celo_yyerror(CELO_YYLTYPE *loc, void *scanner, parse_ctx *ctx, const char *msg)
{
    (void)scanner;
    if (ctx->nerrors > MAX_SYNTAX_ERRORS)
        return; /* we gave up ourselves */
    if (strstr(msg, "exhausted"))
        diag_error(ctx->file, *loc, "brackets or operators nest too deeply; giving up on this file");
    else
        diag_error(ctx->file, *loc, "%s", msg);
    ctx->nerrors++;
}
