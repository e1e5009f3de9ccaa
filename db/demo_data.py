"""Vocabulary for demo data that looks like real Brazilian community campaigns."""

from __future__ import annotations

CATEGORIES = ("alimentos", "roupas", "brinquedos", "serviços", "outros")

NEIGHBOURHOODS = (
    "Centro",
    "Vila Mariana",
    "Pinheiros",
    "Boa Viagem",
    "Savassi",
    "Copacabana",
    "Capão Redondo",
    "Moema",
    "Lapa",
    "Tijuca",
    "Rio Vermelho",
    "Pituba",
    "Meireles",
    "Aldeota",
    "Casa Amarela",
    "Cidade de Deus",
    "Jardim Ângela",
    "Paraisópolis",
    "Liberdade",
    "Mooca",
    "Santa Teresa",
    "Batel",
    "Moinhos de Vento",
    "Asa Norte",
)

# Phone area codes for contacts (São Paulo, Rio, BH, Recife, Salvador, Fortaleza...).
AREA_CODES = ("11", "21", "31", "81", "71", "85", "41", "51", "61")

ORGANIZATIONS = (
    "Instituto Mãos Dadas",
    "Associação Bem Viver",
    "Casa de Acolhida Esperança",
    "Projeto Sementes do Amanhã",
    "Cozinha Solidária do Bairro",
    "ONG Abraço Fraterno",
    "Rede Vizinhança Solidária",
    "Associação de Moradores Unidos",
    "Centro Comunitário Nova Aurora",
    "Banco de Alimentos Partilha",
    "Coletivo Recomeçar",
    "Instituto Criança Feliz",
)

# (template, categories); {bairro} is the campaign's neighbourhood, {ano} the year.
TITLES = (
    ("Cestas básicas para famílias do {bairro}", ("alimentos",)),
    ("Sopa solidária de inverno no {bairro}", ("alimentos",)),
    ("Natal sem fome {ano}", ("alimentos", "brinquedos")),
    ("Campanha do Agasalho {ano}", ("roupas",)),
    ("Cobertores para a população de rua do {bairro}", ("roupas",)),
    ("Dia das Crianças: brinquedos para a creche do {bairro}", ("brinquedos",)),
    ("Páscoa feliz para as crianças do {bairro}", ("brinquedos", "alimentos")),
    ("Volta às aulas com material escolar", ("outros",)),
    ("Mutirão de voluntários no {bairro}", ("serviços",)),
    ("Aulas de reforço escolar no {bairro}", ("serviços",)),
    ("Ajuda emergencial às vítimas das enchentes", ("alimentos", "roupas", "outros")),
    ("Reforma da biblioteca comunitária do {bairro}", ("serviços", "outros")),
    ("Kits de higiene para o abrigo do {bairro}", ("outros",)),
    ("Enxoval para mães de primeira viagem", ("roupas", "outros")),
    ("Ceia solidária de fim de ano no {bairro}", ("alimentos",)),
)

SUBTITLES = (
    "Cada doação faz diferença",
    "Juntos somos mais fortes",
    "Ajude quem mais precisa",
    "Doe o que puder, quando puder",
    "Solidariedade que transforma",
    "",
)

DESCRIPTION_OPENINGS = (
    "Nossa organização atende mais de {n} famílias do {bairro} e região.",
    "Desde {desde}, levamos apoio a famílias em situação de vulnerabilidade no {bairro}.",
    "Com a alta dos preços, muitas famílias do {bairro} não conseguem fechar o mês.",
    "A comunidade do {bairro} se uniu para ajudar quem mais precisa.",
)
DESCRIPTION_MIDDLES = (
    "As doações são entregues diretamente às famílias cadastradas.",
    "Toda a arrecadação é registrada e prestamos contas ao final da campanha.",
    "Os itens são distribuídos aos sábados na sede da associação.",
    "Contamos com voluntários para a triagem e a entrega dos itens.",
)
DESCRIPTION_CLOSINGS = (
    "Entre em contato pelo WhatsApp para combinar a entrega.",
    "Você pode deixar sua doação na nossa sede, de segunda a sexta.",
    "Compartilhe com amigos e vizinhos!",
    "Obrigado pela sua generosidade.",
)

# Needs per category: (name, unit, smallest and largest quantity requested).
ITEMS: dict[str, tuple[tuple[str, str, int, int], ...]] = {
    "alimentos": (
        ("Arroz", "kg", 100, 2000),
        ("Feijão", "kg", 50, 1000),
        ("Macarrão", "kg", 50, 800),
        ("Óleo de soja", "l", 30, 500),
        ("Leite integral", "l", 100, 1500),
        ("Açúcar", "kg", 30, 500),
        ("Cestas básicas", "unit", 20, 400),
    ),
    "roupas": (
        ("Agasalhos", "unit", 50, 600),
        ("Cobertores", "unit", 30, 500),
        ("Meias", "unit", 100, 1000),
        ("Calçados", "unit", 20, 300),
    ),
    "brinquedos": (
        ("Bonecas", "unit", 20, 300),
        ("Bolas", "unit", 20, 200),
        ("Livros infantis", "unit", 50, 500),
        ("Jogos educativos", "unit", 20, 200),
    ),
    "serviços": (
        ("Horas de voluntariado", "hour", 20, 400),
        ("Aulas de reforço", "hour", 10, 200),
        ("Atendimento jurídico", "hour", 5, 80),
        ("Corte de cabelo", "hour", 10, 100),
    ),
    "outros": (
        ("Material escolar (kits)", "unit", 30, 500),
        ("Produtos de higiene", "unit", 50, 800),
        ("Fraldas", "unit", 100, 2000),
        ("Água mineral", "l", 100, 3000),
    ),
}
# Money needs are in BRL minor units (centavos): R$ 1.000 to R$ 50.000.
MONEY_ITEM = ("Doação em dinheiro", "BRL", 100_000, 5_000_000)

# One donation, by unit: smallest and largest quantity.
DONATION_QUANTITY = {
    "kg": (1, 25),
    "l": (1, 20),
    "unit": (1, 12),
    "hour": (1, 8),
    "BRL": (1_000, 50_000),  # R$ 10 to R$ 500
}

FIRST_NAMES = (
    "Maria",
    "José",
    "Ana",
    "João",
    "Francisca",
    "Antônio",
    "Adriana",
    "Carlos",
    "Juliana",
    "Paulo",
    "Márcia",
    "Lucas",
    "Fernanda",
    "Pedro",
    "Aline",
    "Rafael",
    "Camila",
    "Gabriel",
    "Beatriz",
    "Thiago",
    "Luíza",
    "Mateus",
    "Patrícia",
    "Rodrigo",
)
SURNAMES = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Araújo",
    "Barbosa",
)
EMAIL_DOMAINS = ("gmail.com", "hotmail.com", "yahoo.com.br", "outlook.com", "uol.com.br")
MESSAGES = (
    "",
    "",
    "",
    "Boa sorte com a campanha!",
    "Que Deus abençoe o trabalho de vocês.",
    "Contem comigo sempre.",
    "Posso entregar no sábado de manhã.",
    "Doação em nome da minha mãe.",
    "Parabéns pela iniciativa!",
    "Juntos somos mais fortes.",
    "Da turma do 5º ano B.",
)
