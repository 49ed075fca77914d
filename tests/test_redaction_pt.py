"""The log redactor on Portuguese and Brazilian claim text: every identifier, phone number, plate
and cued name must go; amounts, dates, claim ids and the story must stay readable."""

from __future__ import annotations

import pytest

from serving.observability import redact

# (line as an adjuster, a call centre or a claimant writes it, the personal data in it)
LEAKS: list[tuple[str, tuple[str, ...]]] = [
    # Brazil: CPF, CNPJ, RG, CNH, CEP, phones, plates
    ("Sr. João Silva, CPF 123.456.789-09, tel (11) 98765-4321", ("João", "Silva", "456.789")),
    ("Segurado: JOSÉ CARLOS DA SILVA, CPF 98765432100", ("JOSÉ", "CARLOS", "SILVA", "98765432100")),
    ("cpf do segurado 111.444.777-35 conferido", ("444.777",)),
    ("Empresa tomadora CNPJ 12.345.678/0001-90, sede em Campinas", ("345.678", "0001-90")),
    ("CNPJ: 12345678/0001-90 (oficina credenciada)", ("12345678", "0001-90")),
    ("RG 12.345.678-9 SSP/SP apresentado", ("345.678-9",)),
    ("documento de identidade 23.456.789-X", ("456.789",)),
    ("CNH nº 04512345678 válida até 2027", ("04512345678",)),
    ("Endereço: Rua Augusta, 1500, CEP 01310-100, São Paulo", ("01310-100",)),
    ("residente no CEP 20040002", ("20040002",)),
    ("Contato do segurado: (21) 2345-6789 ou (21) 99876-5432", ("2345-6789", "99876-5432")),
    ("ligar para +55 11 98765-4321 após as 18h", ("98765-4321", "+55 11")),
    ("whatsapp +55 (31) 99123-4567", ("99123-4567",)),
    ("celular 11 91234-5678, fixo 11 3456-7890", ("91234-5678", "3456-7890")),
    ("retornar no 98765-4321", ("98765-4321",)),
    ("celular 11987654321 (sem DDD internacional)", ("11987654321",)),
    ("Veículo placa ABC-1234 colidiu na traseira", ("ABC-1234",)),
    ("placa do carro BRA2E19, Mercosul", ("BRA2E19",)),
    ("o terceiro, placa FJK 4821, fugiu do local", ("FJK 4821", "4821")),
    ("IBAN BR1800360305000010009795493C1 para indenização", ("BR1800360305000010009795493C1",)),
    ("Sra. Ana Paula Souza relatou que o veículo estava estacionado", ("Ana", "Paula", "Souza")),
    ("Dra. Márcia Helena dos Santos, médica assistente", ("Márcia", "Helena", "Santos")),
    ("condutor Pedro Henrique de Oliveira sem habilitação", ("Pedro", "Henrique", "Oliveira")),
    ("A segurada, Maria da Conceição Ferreira, ligou às 10h", ("Maria", "Conceição", "Ferreira")),
    ("reclamante Luiz Fernando d'Ávila pede reembolso", ("Luiz", "Fernando", "Ávila")),
    ("tomador do seguro Antônio Carlos Gonçalves e Souza", ("Antônio", "Gonçalves", "Souza")),
    ("falei com Rita de Cássia, esposa do segurado", ("Rita", "Cássia")),
    ("Beneficiário: Francisco Alves", ("Francisco", "Alves")),
    ("o sr. Raimundo Nonato declarou não haver feridos", ("Raimundo", "Nonato")),
    # Portugal: NIF, NISS, Cartão de Cidadão, postal codes, phones, plates, IBAN
    ("NIF 123 456 789, segurado desde 2019", ("123 456 789", "456")),
    ("contribuinte n.º 234567890", ("234567890",)),
    ("NIF: 501234567 (empresa)", ("501234567",)),
    ("NISS 12345678901 indicado no formulário", ("12345678901",)),
    ("Cartão de Cidadão 12345678 9 ZX4", ("12345678", "ZX4")),
    ("CC n.º 09876543-2-ZY7 válido", ("09876543", "ZY7")),
    ("Morada: Rua Augusta 100, 1100-048 Lisboa", ("1100-048",)),
    ("código postal 4000-322 Porto", ("4000-322",)),
    ("telemóvel 912 345 678", ("912 345 678", "345 678")),
    ("contacto +351 912 345 678 ou 213 456 789", ("912 345 678", "213 456 789")),
    ("telefone fixo 21 123 4567", ("21 123 4567", "4567")),
    ("ligar 912345678 depois do almoço", ("912345678",)),
    ("matrícula AA-00-AA, viatura ligeira", ("AA-00-AA",)),
    ("viatura 12-AB-34 embateu no muro", ("12-AB-34",)),
    ("a viatura terceira, matrícula 45-67-XZ", ("45-67-XZ",)),
    ("veículo seguro RT-45-12 parado no semáforo", ("RT-45-12",)),
    ("IBAN PT50 0002 0123 1234 5678 9015 4 para reembolso", ("0123 1234", "9015", "PT50")),
    ("NIB 0002 0123 12345678901 54", ("12345678901",)),
    ("Sr. Manuel José Pereira da Costa, NIF 123456789", ("Manuel", "Pereira", "Costa", "123456")),
    ("Eng.º Rui Miguel Antunes, perito", ("Rui", "Miguel", "Antunes")),
    ("a condutora Inês Sofia Marques sofreu ferimentos ligeiros", ("Inês", "Sofia", "Marques")),
    ("o terceiro Joaquim Lopes assumiu a culpa", ("Joaquim", "Lopes")),
    ("lesado: Vítor Hugo Fernandes", ("Vítor", "Hugo", "Fernandes")),
    ("testemunha, Carla Sofia Rodrigues, viu o embate", ("Carla", "Rodrigues")),
    ("Exmo. Sr. Dr. António Manuel Sousa", ("António", "Manuel", "Sousa")),
    ("D. Maria de Lurdes telefonou", ("Maria", "Lurdes")),
    ("apólice n.º AU-2024-77815 do tomador", ("77815",)),
    ("Nome completo: Gonçalo Nuno Teixeira", ("Gonçalo", "Nuno", "Teixeira")),
]

# Lines that must come back unchanged: amounts, dates, claim ids, times and the story.
KEPT = [
    "Valor do orçamento R$ 1.234,56, franquia R$ 2.500,00",
    "Prejuízo estimado em € 1.234,56 e reserva de 15.000 €",
    "Indenização de R$ 1.234.567,89 aprovada",
    "Sinistro ocorrido em 12/03/2024 às 14h30, comunicado em 13.03.2024",
    "data do acidente 2024-06-01, participação 05-06-2024",
    "processo CLM-1001 aberto pelo segurado",
    "O segurado bateu o carro no poste e a viatura ficou imobilizada",
    "Terceiro embateu na traseira; sem feridos; danos no para-choques",
    "velocidade de 50 km/h, 3 veículos envolvidos, 2 de 3 fotografias",
    "ano de fabrico 2019, período 2023-2024",
]


@pytest.mark.parametrize(("line", "personal"), LEAKS, ids=[line[:40] for line, _ in LEAKS])
def test_portuguese_personal_data_does_not_leak(line: str, personal: tuple[str, ...]) -> None:
    redacted = redact(line)
    for secret in personal:
        assert secret not in redacted, f"{secret!r} leaked from {line!r}: {redacted!r}"
    assert "[" in redacted


def test_the_table_is_large_enough() -> None:
    assert len(LEAKS) >= 40


@pytest.mark.parametrize("line", KEPT)
def test_amounts_dates_claim_ids_and_the_story_stay(line: str) -> None:
    assert redact(line) == line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Sr. João Silva, CPF 123.456.789-09", "[name], CPF [id]"),
        ("telemóvel 912 345 678", "telemóvel [phone]"),
        ("segurada, Maria da Conceição Ferreira, ligou", "segurada, [name], ligou"),
        ("placa ABC-1234", "placa [id]"),
        ("CEP 01310-100", "CEP [id]"),
    ],
)
def test_the_cue_stays_so_the_line_still_reads(line: str, expected: str) -> None:
    assert redact(line) == expected
