/* parser.y — the celo grammar: a pure, reentrant Bison parser with byte-offset locations. */
%define api.pure full
%define api.prefix {celo_yy}
%define parse.error verbose
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
static expr *bin(parse_ctx *c, ast_op op, expr *a, expr *b, span sp)
{
    expr *e = mk(c, EX_BINARY, sp);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
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
}

%token <num> NUMBER
%token <str> NAME STRING
%token OPTIMIZER TRANSFORM IMPORT STATE CHAIN FOR IN AND OR NOT DOTDOT ADDEQ SUBEQ MULEQ DIVEQ LE GE EQ NE
%token BADCHAR

%type <ex> expr
%type <ar> args arglist arg chainlist
%type <st> stmts stmt block
%type <sv> statevars statevar
%type <pa> params paramlist param
%type <op> assignop
%type <df> definition

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
        $$ = mkdef(ctx, DEF_IMPORT, @$); $$->name = $2; $$->name_span = @2; }
    | OPTIMIZER NAME '(' params ')' block {
        $$ = mkdef(ctx, DEF_OPTIMIZER, @$); $$->name = $2; $$->name_span = @2; $$->params = $4; $$->body = $6; }
    | TRANSFORM NAME '(' params ')' block {
        $$ = mkdef(ctx, DEF_TRANSFORM, @$); $$->name = $2; $$->name_span = @2; $$->params = $4; $$->body = $6; }
    | OPTIMIZER NAME '(' params ')' '=' CHAIN '(' chainlist ')' ';' {
        $$ = mkdef(ctx, DEF_OPTIMIZER, @$); $$->name = $2; $$->name_span = @2; $$->params = $4;
        $$->chain = $9; }
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
    ;

block: '{' stmts '}'            { $$ = $2; } ;

stmts: %empty                   { $$ = NULL; }
    | stmts stmt                { if ($2) { stmt **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $2; } $$ = $1; }
    | stmts error ';'           { $$ = $1; }
    ;

stmt: STATE statevars ';'       { $$ = mkstmt(ctx, ST_STATE, @$); $$->vars = $2; }
    | NAME assignop expr ';'    { $$ = mkstmt(ctx, ST_ASSIGN, @$); $$->target = $1; $$->target_span = @1;
                                  $$->aop = $2; $$->value = $3; }
    | NAME '[' expr ']' assignop expr ';' {
                                  $$ = mkstmt(ctx, ST_ASSIGN, @$); $$->target = $1; $$->target_span = @1;
                                  $$->index = $3; $$->aop = $5; $$->value = $6; }
    | FOR NAME IN expr DOTDOT expr block {
                                  $$ = mkstmt(ctx, ST_FOR, @$); $$->var = $2; $$->var_span = @2;
                                  $$->lo = $4; $$->hi = $6; $$->body = $7; }
    ;

assignop: '=' { $$ = '='; } | ADDEQ { $$ = '+'; } | SUBEQ { $$ = '-'; } | MULEQ { $$ = '*'; } | DIVEQ { $$ = '/'; } ;

statevars: statevar             { $$ = $1; }
    | statevars ',' statevar    { statevar **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $3; $$ = $1; }
    ;
statevar: NAME '=' expr         { $$ = arena_alloc(ctx->ar, sizeof(statevar)); $$->name = $1; $$->sp = @1; $$->init = $3; }
    | NAME '[' NUMBER ']' '=' expr {
                                  $$ = arena_alloc(ctx->ar, sizeof(statevar)); $$->name = $1; $$->sp = @1; $$->init = $6;
                                  if ($3 < 1 || $3 > 64 || $3 != (int)$3) {
                                      diag_error(ctx->file, @3, "state vector size must be an integer from 1 to 64");
                                      ctx->nerrors++; $$->size = 1;
                                  } else $$->size = (int)$3; }
    ;

expr: NUMBER                    { $$ = mk(ctx, EX_NUM, @$); $$->num = $1; }
    | NAME                      { $$ = mk(ctx, EX_NAME, @$); $$->name = $1; $$->name_span = @1; }
    | NAME '[' expr ']'         { $$ = mk(ctx, EX_INDEX, @$); $$->name = $1; $$->name_span = @1; $$->b = $3; }
    | NAME '(' args ')'         { $$ = mk(ctx, EX_CALL, @$); $$->name = $1; $$->name_span = @1; $$->args = $3;
                                  for (arg *a = $3; a; a = a->next) $$->nargs++; }
    | '(' expr ')'              { $$ = $2; }
    | '-' expr %prec UMINUS     { $$ = mk(ctx, EX_UNARY, @$); $$->op = OP_NEG; $$->a = $2; }
    | '+' expr %prec UMINUS     { $$ = $2; }
    | NOT expr                  { $$ = mk(ctx, EX_UNARY, @$); $$->op = OP_NOT; $$->a = $2; }
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

args: %empty { $$ = NULL; } | arglist { $$ = $1; } ;
arglist: arg                    { $$ = $1; }
    | arglist ',' arg           { arg **pp = &$1; while (*pp) pp = &(*pp)->next; *pp = $3; $$ = $1; }
    ;
arg: expr                       { $$ = arena_alloc(ctx->ar, sizeof(arg)); $$->value = $1; }
    | NAME '=' expr             { $$ = arena_alloc(ctx->ar, sizeof(arg)); $$->name = $1; $$->name_span = @1; $$->value = $3; }
    ;
%%

static const char *pretty(const char *tok)
{
    static const struct { const char *from, *to; } map[] = {
        {"NUMBER", "a number"}, {"NAME", "a name"}, {"STRING", "a string"}, {"OPTIMIZER", "'optimizer'"},
        {"TRANSFORM", "'transform'"}, {"IMPORT", "'import'"}, {"STATE", "'state'"}, {"CHAIN", "'chain'"},
        {"FOR", "'for'"}, {"IN", "'in'"}, {"AND", "'and'"}, {"OR", "'or'"}, {"NOT", "'not'"},
        {"DOTDOT", "'..'"}, {"ADDEQ", "'+='"}, {"SUBEQ", "'-='"}, {"MULEQ", "'*='"}, {"DIVEQ", "'/='"},
        {"LE", "'<='"}, {"GE", "'>='"}, {"EQ", "'=='"}, {"NE", "'!='"}, {"BADCHAR", "a stray character"},
        {"$end", "end of file"}, {"end of file", "end of file"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(tok, map[i].from))
            return map[i].to;
    return tok;
}

void celo_yyerror(CELO_YYLTYPE *loc, void *scanner, parse_ctx *ctx, const char *msg)
{
    (void)scanner;
    /* Bison's verbose message: "syntax error, unexpected X, expecting Y or Z"; reword its token names. */
    char out[512] = "syntax error";
    const char *u = strstr(msg, "unexpected ");
    if (u) {
        char buf[400];
        snprintf(buf, sizeof buf, "%s", u + 11);
        char *rest = strstr(buf, ", expecting ");
        if (rest)
            *rest = 0;
        size_t n = strlen(out);
        snprintf(out + n, sizeof out - n, ": unexpected %s", pretty(buf));
        if (rest) {
            char *e = rest + 12;
            n = strlen(out);
            snprintf(out + n, sizeof out - n, ", expected ");
            for (char *tok = strtok(e, " "); tok; tok = strtok(NULL, " ")) {
                n = strlen(out);
                if (!strcmp(tok, "or"))
                    snprintf(out + n, sizeof out - n, " or ");
                else
                    snprintf(out + n, sizeof out - n, "%s", pretty(tok));
            }
        }
    }
    diag_error(ctx->file, *loc, "%s", out);
    ctx->nerrors++;
}
