"""Portuguese and Brazilian personal data for the log redactor in `serving.observability`.

A claim from Lisbon or São Paulo carries identifiers the US/UK patterns do not know: CPF, CNPJ,
RG, NIF, NISS, the Cartão de Cidadão, CEP and postal codes, phone numbers written the local way,
plates of both countries, and names after the cues people write (Sr., Dra., segurado, condutora,
terceiro...). `NUMBER_PATTERNS` joins the redactor's single number scan, after dates and before
the generic patterns, so a date is never read as an ID and the more specific shape wins;
`redact_names` runs before the English name pass, because that pass cannot read accented names.
"""

from __future__ import annotations

import re

# Capitals and small letters of Portuguese (and the rest of Latin-1): João, Conceição, Ângela.
_UP = "A-ZÀ-ÖØ-Þ"
_LO = "a-zß-öø-ÿ"
# Lookarounds shared by the unconditional shapes: not inside a longer number, word or amount.
_START = r"(?<![\w.,\-/+$€£])"
_END = r"(?![\w\-]|[.,/]\d)"

_CUES = (
    r"cpf|cnpj|nif|nipc|niss|rg|cc|bi|cnh|pis|nib|iban|ap[óo]lice|placa|matr[íi]cula"
    r"|cart[ãa]o\s+de\s+cidad[ãa]o|carta\s+de\s+condu[çc][ãa]o|carteira\s+de\s+identidade"
    r"|identidade|contribuinte|seguran[çc]a\s+social"
)
_NUMBER_WORD = r"(?:n\.?\s?[º°o]\.?|n[úu]mero|nr\.?)"

NUMBER_PATTERNS: dict[str, str] = {
    # 12.345.678/0001-90, 12345678/0001-90
    "pt_cnpj": rf"{_START}\d{{2}}\.?\d{{3}}\.?\d{{3}}/\d{{4}}-?\d{{2}}{_END}",
    # 123.456.789-09, 123456789-09
    "pt_cpf": rf"{_START}(?:\d{{3}}\.\d{{3}}\.\d{{3}}|\d{{9}})-\d{{2}}{_END}",
    # 12.345.678-9, 1.234.567-X
    "pt_rg": rf"{_START}\d{{1,2}}\.\d{{3}}\.\d{{3}}-[\dXx]{_END}",
    # Cartão de Cidadão: 12345678 9 ZX4, 12345678-9-ZX4
    "pt_cc": rf"{_START}\d{{8}}[\s\-]?\d[\s\-]?[A-Z]{{2}}\d{_END}",
    # PT50 0002 0123 1234 5678 9015 4, BR1800360305000010009795493C1
    "pt_iban": (
        r"(?<![\w])(?:PT|BR|[A-Z]{2})\d{2}(?:[ ]?[A-Z0-9]{4}){3,7}(?:[ ]?[A-Z0-9]{1,3})?(?![\w])"
    ),
    # CEP 01310-100 and the Portuguese 1000-205
    "pt_postal": rf"{_START}\d{{4,5}}-\d{{3}}{_END}",
    # Mercosul ABC1D23; Portuguese AA-00-AA, 00-AA-00, AA-00-00, 00-00-AA
    "pt_plate": (
        r"(?<![\w\-])(?:[A-Z]{3}\d[A-Z]\d{2}|[A-Z]{2}-\d{2}-[A-Z]{2}|\d{2}-[A-Z]{2}-\d{2}"
        r"|[A-Z]{2}-\d{2}-\d{2}|\d{2}-\d{2}-[A-Z]{2})(?![\w\-])"
    ),
    # (11) 98765-4321, 11 3456-7890, (21)2345-6789, and a bare mobile 98765-4321
    "pt_br_phone": (
        rf"{_START}(?:(?:\(\d{{2}}\)\s?|\d{{2}}\s)9?\d{{4}}[\s\-]?\d{{4}}"
        rf"|9\d{{4}}[\s\-]\d{{4}}){_END}"
    ),
    # 912 345 678, 213 456 789, 21 123 4567, 808 200 520
    "pt_pt_phone": (
        rf"{_START}(?:[2389]\d{{2}}[\s.]\d{{3}}[\s.]\d{{3}}|2\d[\s.]\d{{3}}[\s.]\d{{4}}){_END}"
    ),
    # NIF 123 456 789, placa ABC-1234, apólice nº AU-77/2024: what follows a cue that names one
    "pt_cued": (
        rf"(?P<pt_cue>(?<![\w])(?i:{_CUES})(?:\s+d[oa]s?(?:\s+[{_LO}]+){{1,2}})?"
        rf"(?:\s+(?i:{_NUMBER_WORD}))?\s*[:#]?\s*)"
        r"(?P<pt_token>(?=[A-Za-z0-9.\-/ ]*\d)[A-Za-z0-9]"
        r"(?:[A-Za-z0-9.\-/]|[ ](?=[A-Z0-9]+(?![a-z])))*)"
        r"(?<![.\-/])(?![\w\-])"
    ),
}
PHONE_KINDS = frozenset({"pt_br_phone", "pt_pt_phone"})
_MIN_CUED_DIGITS = 2


def cued_number(match: re.Match[str]) -> str:
    """The cue stays and the number goes, unless what follows the cue has too few digits to be
    one (“CC 1 cópia”, “placa do carro”)."""
    token = match.group("pt_token")
    if sum(c.isdigit() for c in token) < _MIN_CUED_DIGITS:
        return match.group()
    return f"{match.group('pt_cue')}[id]"


# --- Names -----------------------------------------------------------------------------------
_ELISION = r"(?:[dD]['\u2019])?"
_PROPER = rf"{_ELISION}[{_UP}][{_LO}]+(?:-[{_UP}][{_LO}]+)?"
_ANY_CASE = rf"{_ELISION}[{_UP}][{_UP}{_LO}]*(?:-[{_UP}][{_UP}{_LO}]+)?"
_INITIAL = rf"[{_UP}]\."
_PARTICLE = r"(?:d[aeo]s?|e)"


def _full_name(word: str) -> str:
    """Up to five words or initials, with the particles between them: Maria da Conceição dos
    Santos e Silva. A particle is taken only when a name word follows it."""
    part = rf"(?:{_INITIAL}|{word})"
    return rf"{part}(?:\s+(?:{_PARTICLE}\s+)?{part}){{0,4}}"


_TITLES = (
    r"(?:(?i:sr|sra|srs|sras|dr|dra|drs|eng|enga|prof|profa|exmo|exma|exmos)"
    r"(?:\.?[ºª])?\.?|D\.|Dona|Dom)"
)
_ROLES = (
    r"segurad[oa]s?|condutor(?:a|es)?|terceir[oa]s?|reclamante|tomador(?:a)?(?:\s+do\s+seguro)?"
    r"|lesad[oa]s?|benefici[áa]ri[oa]|passageir[oa]|testemunha|propriet[áa]ri[oa]|v[íi]tima"
    r"|motorista|pe[ãa]o|pedestre|inquilin[oa]|senhori[oa]|locat[áa]ri[oa]|titular|cliente"
    r"|c[ôo]njuge|marido|esposa|mulher|filh[oa]|participante|declarante|requerente"
    r"|respons[áa]vel|perit[oa]|mediador(?:a)?|corretor(?:a)?|vizinh[oa]"
    r"|falei\s+com|contactei|contatei|liguei\s+(?:para|a)|de\s+nome|chamad[oa]"
    r"|nome\s+completo|nome"
)
_TITLED = re.compile(rf"(?<![\w])(?:{_TITLES}\s*)+(?P<name>{_full_name(_ANY_CASE)})(?![\w'\u2019])")
_ROLE_NAME = re.compile(
    rf"(?P<role>(?<![\w])(?i:{_ROLES})"
    rf"(?:\s*[:=]\s*(?P<after_colon>{_full_name(_ANY_CASE)})"
    rf"|(?:\s*,\s*|\s+)(?:(?i:é|era|foi)\s+)?(?P<after_space>{_full_name(_PROPER)})))"
    r"(?![\w'\u2019])"
)


def _role_name(match: re.Match[str]) -> str:
    name = match.group("after_colon") or match.group("after_space")
    whole = match.group()
    return whole[: len(whole) - len(name)] + "[name]"


def redact_names(text: str) -> str:
    """Names after a Portuguese title (the title goes too) or a role, a verb of contact or
    “nome” (the cue stays)."""
    text = _TITLED.sub("[name]", text)
    return _ROLE_NAME.sub(_role_name, text)
