"""Synthetic, deterministic LAPOR! data for the sandbox: a fictional regency, its bodies,
reply templates and complaints that read like real ones (Bahasa Indonesia).

Everything here is driven by one :class:`random.Random`, so the same seed gives the same
data. The generator is on the hot path of seeding 100,000 reports: it builds plain dicts
with few RNG calls and no validation (the tests validate every seeded item against the
wire models instead).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

#: LAPOR! sends times with the Jakarta offset; a fixed offset formats faster than ZoneInfo
#: and Indonesia has no daylight saving time.
WIB = timezone(timedelta(hours=7))

REGENCY = "Kabupaten Demo"
OUR_NAME = "DPMPTSP Kabupaten Demo"
#: The regency's LAPOR! admin, who verifies reports and disposes them to a body.
ADMIN_NAME = "Bagian Organisasi Setda Kabupaten Demo (Admin SP4N-LAPOR!)"

OTHER_BODIES: tuple[str, ...] = (
    ADMIN_NAME,
    "Dinas Lingkungan Hidup Kabupaten Demo",
    "Dinas Pekerjaan Umum dan Penataan Ruang Kabupaten Demo",
    "Satuan Polisi Pamong Praja Kabupaten Demo",
    "Dinas Perhubungan Kabupaten Demo",
    "Dinas Kesehatan Kabupaten Demo",
    "Dinas Kependudukan dan Pencatatan Sipil Kabupaten Demo",
    "Dinas Pendidikan dan Kebudayaan Kabupaten Demo",
    "Dinas Perumahan dan Kawasan Permukiman Kabupaten Demo",
    "Dinas Perdagangan, Koperasi dan UKM Kabupaten Demo",
    "Dinas Sosial Kabupaten Demo",
    "Badan Pendapatan Daerah Kabupaten Demo",
    "Badan Penanggulangan Bencana Daerah Kabupaten Demo",
    "Kantor Pertanahan (BPN) Kabupaten Demo",
    "PT PLN (Persero) UP3 Demo",
    "Perumda Air Minum (PDAM) Tirta Demo",
    "RSUD Kabupaten Demo",
)

STATUS_NAMES: dict[str, str] = {
    "0": "Belum Terverifikasi",
    "1": "Terverifikasi",
    "2": "Dalam Proses",
    "3": "Selesai",
    "4": "Diarsipkan",
    "5": "Ditolak",
}

#: Category id -> name, as ``category_id`` of ``POST /complaints/complaint`` refers to them.
CATEGORIES: dict[int, str] = {
    1: "Perizinan",
    2: "Lingkungan Hidup",
    3: "Ketertiban Umum",
    4: "Infrastruktur Jalan",
}

#: ``classification_id``: what LAPOR! calls the kind of report.
CLASSIFICATIONS: dict[int, str] = {
    1: "Aspirasi",
    2: "Pengaduan",
    3: "Permintaan Informasi",
    4: "Whistle-blowing",
}

CHANNELS: tuple[str, ...] = ("Website",) * 5 + ("Android",) * 3 + ("iOS", "SMS", "Twitter")

KECAMATAN: dict[str, tuple[str, ...]] = {
    "Sukamaju": ("Kel. Sukamaju", "Desa Sukamulya", "Desa Cibeureum", "Desa Mekarjaya"),
    "Karanganyar": ("Kel. Karanganyar", "Kel. Jetis", "Desa Ngringo", "Desa Bolong"),
    "Wonosari": ("Kel. Wonosari", "Desa Kepek", "Desa Baleharjo", "Desa Siraman"),
    "Sidomulyo": ("Desa Sidomulyo", "Desa Sidorejo", "Desa Banjarsari", "Desa Kedungrejo"),
    "Tanjungsari": ("Kel. Tanjungsari", "Desa Kemadang", "Desa Banjarejo", "Desa Ngestirejo"),
    "Mekarsari": ("Kel. Mekarsari", "Desa Sindangsari", "Desa Margajaya", "Desa Pasirjati"),
    "Sumberrejo": ("Desa Sumberrejo", "Desa Prayungan", "Desa Mlinjon", "Desa Talun"),
    "Jatiroto": ("Kel. Jatiroto", "Desa Kaliboto", "Desa Rojopolo", "Desa Sukosari"),
    "Banyuurip": ("Desa Banyuurip", "Desa Jatisari", "Desa Tegalrejo", "Desa Ngablak"),
    "Ngawen": ("Kel. Ngawen", "Desa Kampung", "Desa Sambirejo", "Desa Tancep"),
    "Pandanwangi": ("Desa Pandanwangi", "Desa Sumberagung", "Desa Glagah", "Desa Kalisat"),
    "Purwodadi": ("Kel. Purwodadi", "Kel. Kuripan", "Desa Ngembak", "Desa Genuksuran"),
}

#: ``location_id`` -> (kelurahan/desa, kecamatan name), numbered from 1 in a fixed order.
LOCATIONS: dict[int, tuple[str, str]] = {
    i: (desa, kec)
    for i, (desa, kec) in enumerate(
        ((d, k) for k, ds in KECAMATAN.items() for d in ds), start=1
    )
}
LOCATION_TEXT: dict[int, str] = {i: f"{d}, Kec. {k}" for i, (d, k) in LOCATIONS.items()}

TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "code": "TL-TERIMA",
        "name": "Laporan diterima",
        "content": "Terima kasih atas laporan Saudara. Laporan telah kami terima dan tercatat "
        "dalam buku register pengaduan. Kami akan menindaklanjutinya paling lambat 5 hari kerja.",
    },
    {
        "code": "TL-LENGKAPI",
        "name": "Permintaan kelengkapan berkas",
        "content": "Untuk menindaklanjuti laporan ini, mohon Saudara melengkapi identitas (KTP) "
        "dan bukti pendukung (foto lokasi, nomor permohonan izin) melalui kanal ini.",
    },
    {
        "code": "TL-PROSES",
        "name": "Sedang ditindaklanjuti",
        "content": "Laporan Saudara sedang kami tindak lanjuti. Tim teknis telah dijadwalkan "
        "melakukan peninjauan lapangan dan koordinasi dengan perangkat daerah terkait.",
    },
    {
        "code": "TL-SELESAI",
        "name": "Tindak lanjut selesai",
        "content": "Laporan Saudara telah selesai ditindaklanjuti. Hasilnya kami tuangkan "
        "dalam Berita Acara Penyelesaian Pengaduan. Terima kasih atas partisipasi Saudara.",
    },
    {
        "code": "TL-BUKAN-WEWENANG",
        "name": "Bukan kewenangan, diteruskan",
        "content": "Setelah kami kaji, laporan ini bukan kewenangan DPMPTSP. Laporan kami "
        "teruskan kepada perangkat daerah yang berwenang dengan tembusan kepada Saudara.",
    },
)

_STREETS = (
    "Jl. Merdeka", "Jl. Diponegoro", "Jl. Ahmad Yani", "Jl. Jenderal Sudirman", "Jl. Pemuda",
    "Jl. Gatot Subroto", "Jl. Pahlawan", "Jl. Veteran", "Jl. Kartini", "Jl. Imam Bonjol",
    "Jl. Raya Demo-Sukamaju", "Jl. Pramuka", "Jl. Kenanga", "Jl. Melati", "Jl. Cempaka",
)
_BUSINESSES = (
    "minimarket", "toko bangunan", "gudang pupuk", "rumah makan", "bengkel las", "kafe",
    "pabrik tahu", "penggilingan padi", "tower telekomunikasi", "rumah kos", "karaoke",
    "peternakan ayam", "pencucian mobil", "pabrik batako", "SPBU mini",
)
_PERMITS = (
    "PBG", "NIB", "izin lingkungan", "izin reklame", "SLF", "izin usaha mikro",
    "izin operasional", "KKPR", "izin praktik",
)
_PLACES = (
    "pasar", "alun-alun", "sekolah dasar", "puskesmas", "stasiun", "terminal", "masjid agung",
    "kantor kecamatan", "taman kota", "rumah sakit",
)
_WHEN = (
    "sejak dua minggu terakhir", "sudah lebih dari sebulan", "hampir setiap hari",
    "sejak awal bulan ini", "setiap malam", "sejak musim hujan", "sudah tiga bulan",
    "sejak pekan lalu",
)
_FIRST = (
    "Budi", "Siti", "Agus", "Dewi", "Rudi", "Sri", "Joko", "Rina", "Ahmad", "Nur", "Eko",
    "Wahyu", "Lestari", "Bambang", "Yuni", "Hendra", "Fitri", "Slamet", "Indah", "Dimas",
    "Ayu", "Rizki", "Putri", "Teguh", "Maya", "Arif", "Endang", "Fajar", "Ratna", "Yusuf",
)
_LAST = (
    "Santoso", "Aminah", "Wibowo", "Lestari", "Hartono", "Rahayu", "Susanto", "Kurniawan",
    "Setiawan", "Handayani", "Prasetyo", "Wulandari", "Saputra", "Nugroho", "Hidayat",
    "Purnomo", "Suryani", "Gunawan", "Maharani", "Firmansyah",
)
_MAIL_DOMAINS = ("example.com", "example.net", "example.org")
_ATTACHMENTS = (
    ("foto_lokasi.jpg", "image/jpeg"), ("IMG_20240312_081530.jpg", "image/jpeg"),
    ("bukti.png", "image/png"), ("ktp.pdf", "application/pdf"),
    ("surat_permohonan.pdf", "application/pdf"), ("video_kejadian.mp4", "video/mp4"),
    ("tanda_terima_berkas.pdf", "application/pdf"),
)

_OPENINGS = (
    "Selamat siang Bapak/Ibu.", "Dengan hormat,", "Assalamualaikum, mohon izin melapor.",
    "Mohon bantuan Bapak/Ibu.", "Selamat pagi, saya warga {lokasi}.", "Yth. Admin LAPOR!,",
    "Saya ingin menyampaikan keluhan.",
)
_CLOSINGS = (
    "Mohon segera ditindaklanjuti. Terima kasih.",
    "Kami berharap ada tindakan tegas dari dinas terkait.",
    "Atas perhatiannya saya ucapkan terima kasih.",
    "Mohon kejelasannya, karena warga sudah resah.",
    "Kami siap dimintai keterangan bila diperlukan.",
    "Terima kasih, semoga cepat ditangani.",
)

#: Per category: (title patterns, body sentences). Slots: {lokasi} {desa} {kec} {jalan}
#: {usaha} {izin} {tempat} {waktu} {n}.
_TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Perizinan": (
        (
            "Permohonan {izin} sudah {n} minggu belum ada kabar",
            "Bangunan {usaha} tanpa izin di {desa}",
            "Pengurusan NIB lewat OSS selalu gagal",
            "Dimintai biaya tambahan saat mengurus {izin}",
            "{izin} untuk {usaha} di {jalan} dipertanyakan",
            "Berkas {izin} dinyatakan tidak lengkap berulang kali",
        ),
        (
            "Saya mengajukan permohonan {izin} untuk {usaha} sejak {n} minggu lalu, "
            "tetapi statusnya di sistem masih 'verifikasi berkas'.",
            "Di {jalan}, {desa} sedang dibangun {usaha} padahal warga sekitar tidak pernah "
            "diajak sosialisasi dan tidak terlihat papan izin.",
            "Petugas di loket meminta uang di luar ketentuan agar {izin} cepat keluar.",
            "Setiap kali datang ke Mal Pelayanan Publik saya diminta melengkapi berkas yang "
            "berbeda-beda.",
            "Aplikasi OSS menampilkan pesan galat saat mengunggah dokumen persyaratan.",
            "Kami ingin tahu apakah {usaha} tersebut sudah memiliki {izin} yang sah.",
        ),
    ),
    "Lingkungan Hidup": (
        (
            "Limbah {usaha} mencemari sungai di {desa}",
            "Bau menyengat dari {usaha} di {desa}",
            "Pembakaran sampah {waktu} di {desa}",
            "Tumpukan sampah liar di pinggir {jalan}",
            "Kebisingan mesin {usaha} sampai larut malam",
            "Debu aktivitas {usaha} mengganggu warga {desa}",
        ),
        (
            "Air sungai di belakang permukiman berubah warna dan berbau {waktu}.",
            "Limbah dibuang langsung ke saluran irigasi sawah warga tanpa diolah.",
            "Asap dan bau dari {usaha} masuk ke rumah-rumah warga, anak-anak mulai batuk.",
            "Sampah menumpuk di pinggir {jalan} dan tidak pernah diangkut petugas.",
            "Suara mesin terdengar sampai pukul 02.00 dini hari sehingga warga sulit tidur.",
            "Sudah pernah disampaikan ke pemerintah {desa} tetapi belum ada tindakan.",
        ),
    ),
    "Ketertiban Umum": (
        (
            "PKL berjualan di trotoar {jalan}",
            "Parkir liar di depan {tempat} {kec}",
            "Balap liar setiap malam minggu di {jalan}",
            "{usaha} buka melewati jam operasional",
            "Reklame liar menutupi rambu di {jalan}",
            "Pengamen dan pak ogah di simpang {jalan}",
        ),
        (
            "Trotoar di {jalan} penuh pedagang sehingga pejalan kaki harus turun ke jalan.",
            "Juru parkir liar menarik tarif Rp5.000 dan membuat kemacetan di depan {tempat}.",
            "Setiap malam minggu terjadi balap liar yang sangat membahayakan pengguna jalan.",
            "Tempat usaha tersebut masih ramai dan memutar musik keras lewat tengah malam.",
            "Spanduk dan baliho dipasang sembarangan hingga menutupi rambu lalu lintas.",
            "Kami mohon Satpol PP melakukan penertiban secara rutin.",
        ),
    ),
    "Infrastruktur Jalan": (
        (
            "Jalan rusak berlubang di {jalan} {desa}",
            "Lampu penerangan jalan mati di {jalan}",
            "Drainase tersumbat, {jalan} tergenang",
            "Perbaikan {jalan} terbengkalai {waktu}",
            "Jembatan penghubung di {desa} retak",
            "Aspal baru di {jalan} sudah mengelupas",
        ),
        (
            "Lubang di badan jalan cukup dalam dan sudah beberapa kali menyebabkan pengendara "
            "motor terjatuh.",
            "Lampu penerangan jalan di sepanjang {jalan} padam {waktu} sehingga rawan "
            "kejahatan.",
            "Saat hujan air meluap ke jalan karena saluran tertutup sedimen dan sampah.",
            "Material proyek ditinggalkan di bahu jalan dan pekerjaan berhenti {waktu}.",
            "Jembatan tersebut dilalui anak sekolah setiap hari dan retaknya makin lebar.",
            "Perbaikan baru selesai dua bulan lalu namun kualitasnya sangat buruk.",
        ),
    ),
}
_CATEGORY_ID_BY_NAME = {name: cid for cid, name in CATEGORIES.items()}

_FOLLOWUP_TEXTS = (
    "Terima kasih atas laporan Saudara. Laporan telah kami register dan sedang kami "
    "koordinasikan dengan bidang terkait.",
    "Tim teknis telah melakukan peninjauan lapangan di {lokasi}. Hasil peninjauan sedang kami "
    "kaji bersama perangkat daerah terkait.",
    "Mohon Saudara melengkapi salinan KTP dan foto lokasi agar laporan dapat kami proses.",
    "Berdasarkan hasil rapat koordinasi, pemilik usaha telah diberi teguran tertulis dan "
    "diminta melengkapi perizinan dalam 14 hari kerja.",
    "Laporan Saudara telah selesai ditindaklanjuti. Berita Acara Penyelesaian Pengaduan "
    "dapat diambil di loket pengaduan DPMPTSP.",
)

#: Seeded reports: share of each status among reports already disposed to a body.
_STATUS_WEIGHTS = (("0", 4), ("1", 38), ("2", 32), ("3", 16), ("4", 7), ("5", 3))
_STATUS_TABLE: tuple[str, ...] = tuple(code for code, w in _STATUS_WEIGHTS for _ in range(w))

DAY = 86_400


def followup_text(rng: random.Random, location: str) -> str:
    """A follow-up as the body would write it (the closing one is picked by status)."""
    text = _FOLLOWUP_TEXTS[int(rng.random() * (len(_FOLLOWUP_TEXTS) - 1))]
    return text.replace("{lokasi}", location)


def closing_followup_text() -> str:
    return _FOLLOWUP_TEXTS[-1]


def iso(ts: int) -> str:
    """Epoch seconds -> ISO-8601 with the +07:00 offset, second resolution (as Laravel)."""
    return datetime.fromtimestamp(ts, WIB).isoformat()


def institutions_for(our_id: int) -> dict[int, str]:
    """Our body under ``our_id`` and the other bodies of the regency under ids from 101."""
    result = {our_id: OUR_NAME}
    next_id = 101
    for name in OTHER_BODIES:
        while next_id == our_id:
            next_id += 1
        result[next_id] = name
        next_id += 1
    return result


def person_from(rng: random.Random) -> dict[str, str]:
    """A made-up complainant: name, e-mail and phone."""
    first = _FIRST[int(rng.random() * len(_FIRST))]
    last = _LAST[int(rng.random() * len(_LAST))]
    num = int(rng.random() * 1000)
    return {
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{num}@{_MAIL_DOMAINS[num % 3]}",
        "phone": f"08{int(rng.random() * 10) + 11}{int(rng.random() * 100_000_000):08d}",
    }


class ReportFactory:
    """Builds report dicts (wire shape of an inbox item) and their history from one RNG."""

    def __init__(self, rng: random.Random, institutions: dict[int, str], our_id: int) -> None:
        self.rng = rng
        self.institutions = institutions
        self.our_id = our_id
        self.others = [i for i in institutions if i != our_id]
        self.admin_id = next(i for i, n in institutions.items() if n == ADMIN_NAME)
        self._attachment_seq = 0

    def next_attachment_id(self) -> str:
        self._attachment_seq += 1
        return f"att-{self._attachment_seq:07d}"

    def person(self) -> dict[str, str]:
        return person_from(self.rng)

    def attachment(self) -> dict[str, Any]:
        rng = self.rng
        name, mime = _ATTACHMENTS[int(rng.random() * len(_ATTACHMENTS))]
        att_id = self.next_attachment_id()
        return {
            "id": att_id,
            "name": name,
            "url": f"https://www.lapor.go.id/storage/sandbox/{att_id}/{name}",
            "size": 20_000 + int(rng.random() * 3_000_000),
            "mime": mime,
        }

    def text(self, category: str | None = None, location_id: int | None = None) -> dict[str, Any]:
        """Title, content, category and location of one complaint."""
        rng = self.rng
        if category is None:
            category = CATEGORIES[1 + int(rng.random() * len(CATEGORIES))]
        if location_id is None:
            location_id = 1 + int(rng.random() * len(LOCATIONS))
        titles, sentences = _TOPICS[category]
        desa, kec = LOCATIONS[location_id]
        slots = {
            "lokasi": LOCATION_TEXT[location_id],
            "desa": desa,
            "kec": f"Kec. {kec}",
            "jalan": _STREETS[int(rng.random() * len(_STREETS))],
            "usaha": _BUSINESSES[int(rng.random() * len(_BUSINESSES))],
            "izin": _PERMITS[int(rng.random() * len(_PERMITS))],
            "tempat": _PLACES[int(rng.random() * len(_PLACES))],
            "waktu": _WHEN[int(rng.random() * len(_WHEN))],
            "n": 2 + int(rng.random() * 10),
        }
        title = titles[int(rng.random() * len(titles))].format_map(slots)
        n_body = 2 + int(rng.random() * 3)
        start = int(rng.random() * len(sentences))
        body = [sentences[(start + k) % len(sentences)] for k in range(n_body)]
        parts = [_OPENINGS[int(rng.random() * len(_OPENINGS))], *body,
                 f"Lokasi: {{jalan}}, {LOCATION_TEXT[location_id]}.",
                 _CLOSINGS[int(rng.random() * len(_CLOSINGS))]]
        content = " ".join(parts).format_map(slots)
        return {
            "title": title[0].upper() + title[1:],
            "content": content,
            "category": category,
            "location": LOCATION_TEXT[location_id],
        }

    def report(
        self,
        rid: int,
        created: int,
        updated: int,
        *,
        status_code: str | None = None,
        disposition_id: int | None = None,
    ) -> dict[str, Any]:
        """One report as the inbox lists it (times filled in by the caller's clock)."""
        rng = self.rng
        if status_code is None:
            status_code = _STATUS_TABLE[int(rng.random() * len(_STATUS_TABLE))]
        if disposition_id is None:
            # A few of our reports have since been passed on to another body.
            disposition_id = (
                self.others[1 + int(rng.random() * (len(self.others) - 1))]
                if rng.random() < 0.05
                else self.our_id
            )
        anonymous = rng.random() < 0.10
        secret = not anonymous and rng.random() < 0.17
        n_att = int(rng.random() * 4)
        data: dict[str, Any] = {
            "id": rid,
            "tracking_id": str(1_900_000 + rid * 3 + int(rng.random() * 3)),
            **self.text(),
            "status_code": status_code,
            "status_name": STATUS_NAMES[status_code],
            "disposition_id": disposition_id,
            "disposition_name": self.institutions[disposition_id],
            "is_anonymous": int(anonymous),
            "is_secret": int(secret),
            "channel": CHANNELS[int(rng.random() * len(CHANNELS))],
            "reporter": None if anonymous else self.person(),
            "attachments": [self.attachment() for _ in range(n_att)],
            "created_at": iso(created),
            "updated_at": iso(updated),
        }
        return data

    def times(self, anchor: int, days: int = 60) -> tuple[int, int]:
        """A (created, updated) pair in the ``days`` before ``anchor``."""
        rng = self.rng
        created = anchor - 1 - int(rng.random() * days * DAY)
        if rng.random() < 0.3:
            return created, created
        return created, created + int(rng.random() * (anchor - created))

    @staticmethod
    def category_id(name: str | None) -> int | None:
        return _CATEGORY_ID_BY_NAME.get(name) if name else None
