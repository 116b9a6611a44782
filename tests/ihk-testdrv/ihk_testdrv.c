// SPDX-License-Identifier: GPL-2.0
/*
 * ihk_testdrv: a TEST DOUBLE of the IHK host driver's device interface, for
 * slurm-lwk's tests in a throw-away VM. It is not IHK and boots nothing: it
 * implements the subset of IHK's ioctl ABI that slurm-lwk uses, with IHK's
 * request numbers, argument layouts, states and error codes, and with IHK's
 * real Linux-side effects where they matter to the caller:
 *
 *   - reserving CPUs takes them offline through the kernel's CPU hotplug
 *     (remove_cpu), releasing brings them back (add_cpu); the boot CPU is
 *     refused by the kernel itself, which IHK reports as EPERM;
 *   - reserving memory allocates NUMA-local compound pages with
 *     GFP_KERNEL | __GFP_THISNODE (so never from ZONE_MOVABLE unless the
 *     module parameter movable_fallback is set), from the 4 MiB order down to the request's minimum
 *     chunk size within its timeout, so what a reservation gets depends on
 *     the node's real fragmentation; physically adjacent allocations are
 *     merged into one chunk;
 *   - DESTROY_OS is refused with EBUSY while any file of /dev/mcosN is open
 *     (the open count is kept by the kernel's open/release of the device);
 *   - REGISTER_EVENT takes real eventfds, signalled by the driver.
 *
 * Test-only, not IHK: debugfs ihk_testdrv/chunks lists every chunk with its
 * physical start, so the VM harness can see how contiguous a reservation
 * really is (IHK's QUERY_MEM gives sizes and nodes only).
 *
 * What an LWK would do is synthetic: BOOT returns at READY and the instance
 * turns RUNNING shortly after; rusage counters grow with the time spent
 * RUNNING; the monitor page shows every LWK CPU busy in user mode. Panic,
 * hang and OOM are triggered through test-only requests (see TESTDRV_*).
 *
 * Never load this module outside a test VM: it takes CPUs offline and holds
 * memory on request of whoever can open /dev/mcd0.
 *
 * The ABI facts follow IHK 1.7 (RIKEN-SysSoft/ihk, the sources pkg/ihk/ioctl
 * names: linux/include/ihk/ihk_host_user.h, status.h, ihk_rusage.h,
 * ihk_monitor.h, linux/core/host_driver.c, linux/driver/smp/smp-driver.c);
 * the file names below are that tree's.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/fs.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/mutex.h>
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/vmstat.h>
#include <linux/eventfd.h>
#include <linux/workqueue.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/cred.h>
#include <linux/string.h>
#include <linux/err.h>
#include <linux/version.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#define DRV "ihk_testdrv"

/*
 * Kernel API differences between Debian 12's 6.1 and newer kernels (6.12):
 * class_create lost its owner argument in 6.4, eventfd_signal its count in
 * 6.8.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define testdrv_class_create(name) class_create(name)
#else
#define testdrv_class_create(name) class_create(THIS_MODULE, name)
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define testdrv_eventfd_signal(ctx) eventfd_signal(ctx)
#else
#define testdrv_eventfd_signal(ctx) eventfd_signal(ctx, 1)
#endif

/* Request numbers: plain constants, base + index (ihk_host_user.h). */
#define DEV_BASE 0x112900
#define OS_BASE 0x112a00
#define AUX_BASE 0x11290100

#define IHK_DEVICE_CREATE_OS (DEV_BASE + 0x00)
#define IHK_DEVICE_DESTROY_OS (DEV_BASE + 0x01)
#define IHK_DEVICE_RESERVE_CPU (DEV_BASE + 0x02)
#define IHK_DEVICE_RELEASE_CPU (DEV_BASE + 0x03)
#define IHK_DEVICE_RESERVE_MEM (DEV_BASE + 0x04)
#define IHK_DEVICE_RELEASE_MEM (DEV_BASE + 0x05)
#define IHK_DEVICE_QUERY_CPU (DEV_BASE + 0x06)
#define IHK_DEVICE_QUERY_MEM (DEV_BASE + 0x07)
#define IHK_DEVICE_GET_BUILDID (DEV_BASE + 0x0b)
#define IHK_DEVICE_GET_NUM_CPUS (DEV_BASE + 0x0c)
#define IHK_DEVICE_DETECT_HUNGUP (DEV_BASE + 0x0f)

#define IHK_OS_LOAD (OS_BASE + 0x00)
#define IHK_OS_BOOT (OS_BASE + 0x01)
#define IHK_OS_SHUTDOWN (OS_BASE + 0x02)
#define IHK_OS_QUERY_STATUS (OS_BASE + 0x03)
#define IHK_OS_SET_KARGS (OS_BASE + 0x04)
#define IHK_OS_STATUS (OS_BASE + 0x14)
#define IHK_OS_REGISTER_EVENT (OS_BASE + 0x15)
#define IHK_OS_EVENTFD (OS_BASE + 0x16)
#define IHK_OS_READ_KMSG (OS_BASE + 0x20)
#define IHK_OS_CLEAR_KMSG (OS_BASE + 0x21)
#define IHK_OS_ASSIGN_CPU (OS_BASE + 0x22)
#define IHK_OS_RELEASE_CPU (OS_BASE + 0x23)
#define IHK_OS_ASSIGN_MEM (OS_BASE + 0x24)
#define IHK_OS_RELEASE_MEM (OS_BASE + 0x25)
#define IHK_OS_QUERY_CPU (OS_BASE + 0x26)
#define IHK_OS_QUERY_MEM (OS_BASE + 0x27)
#define IHK_OS_SET_IKC_MAP (OS_BASE + 0x28)
#define IHK_OS_GET_IKC_MAP (OS_BASE + 0x29)
#define IHK_OS_FREEZE (OS_BASE + 0x30)
#define IHK_OS_THAW (OS_BASE + 0x31)
#define IHK_OS_GET_USAGE (OS_BASE + 0x32)
#define IHK_OS_GET_CPU_USAGE (OS_BASE + 0x33)
#define IHK_OS_GET_NUM_NUMA_NODES (OS_BASE + 0x34)
#define IHK_OS_NOTIFY_HUNGUP (OS_BASE + 0x35)
#define IHK_OS_GET_BUILDID (OS_BASE + 0x37)
#define IHK_OS_GET_NUM_CPUS (OS_BASE + 0x38)

#define IHK_OS_AUX_PERF_NUM (AUX_BASE + 0x00)
#define IHK_OS_AUX_PERF_SET (AUX_BASE + 0x01)
#define IHK_OS_AUX_PERF_GET (AUX_BASE + 0x02)
#define IHK_OS_AUX_PERF_ENABLE (AUX_BASE + 0x03)
#define IHK_OS_AUX_PERF_DISABLE (AUX_BASE + 0x04)
#define IHK_OS_AUX_PERF_DESTROY (AUX_BASE + 0x05)
#define IHK_OS_GETRUSAGE (AUX_BASE + 0x06)

/*
 * Test-only requests on /dev/mcosN, root only, in IHK's OS debug range
 * (0x122a00..0x122aff; IHK itself uses only 0x122a00 there).
 */
#define TESTDRV_INJECT_PANIC 0x122a80 /* status FAILED, STATUS eventfds signalled */
#define TESTDRV_INJECT_HANG 0x122a81 /* the next DETECT_HUNGUP finds the LWK hung */
#define TESTDRV_INJECT_OOM 0x122a82 /* OOM eventfds signalled, a kmsg line */

/* Kernel status values (ihk status.h). */
enum {
	ST_NOT_BOOTED = 0,
	ST_LOADING = 1,
	ST_BOOTING = 2,
	ST_BOOTED = 3,
	ST_READY = 4,
	ST_RUNNING = 5,
	ST_FREEZING = 6,
	ST_FROZEN = 7,
	ST_SHUTDOWN = 8,
	ST_FAILED = 9,
	ST_HUNGUP = 10,
};

/* Event types (ihk host_driver.c). */
#define EVT_OOM 0
#define EVT_STATUS 2
#define EVT_KMSG 101

/* Monitor page CPU states (ihk ihk_monitor.h). */
#define MON_USER 2
#define MON_KERNEL 3
#define MON_FROZEN 9
#define MON_PANIC 99

#define MAX_OS 64 /* OS_MAX_MINOR */
#define MAX_CPUS 512 /* SMP_MAX_CPUS */
#define MEM_GRANULE (4UL << 20) /* IHK_RESERVE_MEM_GRANULE */
#define KARGS_LEN 256 /* the boot parameter field; 255 characters kept */
#define KMSG_RING 65536 /* smaller than IHK's 4 MiB ring; READ_KMSG copies what is there */
#define RUSAGE_SIZE 16568 /* sizeof(struct ihk_os_rusage), ihk_rusage.h */
#define BUILD_ID "ihk-testdrv-1"
#define RUNNING_DELAY_MS 200 /* READY -> RUNNING, as an LWK's done_init */

/* struct ihk_cpu_req, struct ihk_mem_req, struct ihk_ikc_req (ihk_host_user.h). */
struct cpu_req {
	int __user *cpus;
	int num_cpus;
};

struct mem_req {
	size_t __user *sizes;
	int __user *numa_ids;
	int num_chunks;
	int min_chunk_size;
	int max_size_ratio_all;
	int timeout;
};

struct ikc_req {
	int __user *src_cpus;
	int __user *dst_cpus;
	int num_cpus;
};

struct eventfd_desc {
	int fd;
	int type;
};

struct getrusage_desc {
	void __user *rusage;
	size_t size_rusage;
};

/* One physically contiguous piece: a compound page of 2^order pages. */
struct piece {
	struct page *page;
	unsigned int order;
};

/*
 * A reserved chunk: physically contiguous pieces on one node. owner is -1
 * while the chunk is in the device's free pool, else the OS index.
 */
struct chunk {
	struct list_head list;
	int nid;
	int owner;
	unsigned long tag; /* the ASSIGN_MEM request that assigned it */
	size_t bytes;
	int npieces, cap;
	struct piece *pieces;
};

struct evt {
	struct list_head list;
	int type;
	struct eventfd_ctx *ctx;
};

struct os {
	int idx;
	bool exists;
	int status;
	atomic_t opens;
	int cpus[MAX_CPUS]; /* Linux ids in LWK order */
	int ikc_dst[MAX_CPUS];
	int ncpus;
	bool loaded;
	char kargs[KARGS_LEN];
	char *kmsg; /* allocated by CREATE_OS, freed by DESTROY_OS */
	size_t kmsg_len;
	struct list_head events;
	bool hang_armed;
	int perf_num; /* counters registered by AUX_PERF_SET */
	u64 run_ns; /* time spent RUNNING before run_since */
	ktime_t run_since; /* 0 unless RUNNING */
	struct delayed_work run_work;
};

/*
 * IHK's SMP driver asks for GFP_KERNEL pages, which never come from
 * ZONE_MOVABLE; only when built for a kernel with CONFIG_MOVABLE_NODE (gone
 * since Linux 4.14) and booted with movable_node does it retry a failed
 * allocation with __GFP_MOVABLE | __GFP_HIGHMEM. movable_fallback=1 models
 * that build; the default models IHK on any newer kernel.
 */
static bool movable_fallback;
module_param(movable_fallback, bool, 0444);
MODULE_PARM_DESC(movable_fallback, "retry failed reservations from ZONE_MOVABLE, as IHK built with CONFIG_MOVABLE_NODE and booted with movable_node");

static DEFINE_MUTEX(lock);
static int cpu_owner[MAX_CPUS]; /* -2 Linux's, -1 reserved and free, >= 0 assigned to that OS */
static LIST_HEAD(chunks);
static struct os oses[MAX_OS];
static int booting_os = -1; /* the device-wide BOOTING flag (host_driver.c, BOOT) */
static unsigned long assign_serial;

static dev_t mcd_dev, mcos_dev;
static struct cdev mcd_cdev, mcos_cdev;
static struct class *mcd_class, *mcos_class;

static bool is_root(void)
{
	return uid_eq(current_euid(), GLOBAL_ROOT_UID);
}

static void kmsg_add(struct os *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!o->kmsg || o->kmsg_len >= KMSG_RING - 1)
		return;
	va_start(ap, fmt);
	n = vscnprintf(o->kmsg + o->kmsg_len, KMSG_RING - o->kmsg_len, fmt, ap);
	va_end(ap);
	o->kmsg_len += n;
}

static void signal_events(struct os *o, int type)
{
	struct evt *e;

	list_for_each_entry(e, &o->events, list)
		if (e->type == type)
			testdrv_eventfd_signal(e->ctx);
}

/* ---------------------------------------------------------------- CPUs -- */

static int copy_cpus(const struct cpu_req *r, int **out)
{
	int *cpus, i;

	*out = NULL;
	if (r->num_cpus < 0 || r->num_cpus > MAX_CPUS)
		return -EINVAL;
	if (r->num_cpus == 0)
		return 0;
	cpus = kmalloc_array(r->num_cpus, sizeof(int), GFP_KERNEL);
	if (!cpus)
		return -ENOMEM;
	if (copy_from_user(cpus, r->cpus, r->num_cpus * sizeof(int))) {
		kfree(cpus);
		return -EFAULT;
	}
	for (i = 0; i < r->num_cpus; i++) {
		if (cpus[i] < 0 || cpus[i] >= MAX_CPUS || cpus[i] >= nr_cpu_ids) {
			kfree(cpus);
			return -EINVAL;
		}
	}
	*out = cpus;
	return 0;
}

/* Caller holds lock. Takes the CPUs away from Linux as IHK's RESERVE_CPU does. */
static int reserve_cpus(const int *cpus, int n)
{
	int i, j, err;

	for (i = 0; i < n; i++) {
		if (!cpu_present(cpus[i]) || !cpu_online(cpus[i]) || cpu_owner[cpus[i]] != -2)
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (cpus[j] == cpus[i])
				return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		err = remove_cpu(cpus[i]);
		if (err) {
			pr_info(DRV ": offlining cpu %d failed: %d\n", cpus[i], err);
			for (j = 0; j < i; j++) {
				if (add_cpu(cpus[j]) == 0)
					cpu_owner[cpus[j]] = -2;
			}
			/* IHK's handler returns -1 here: userspace sees EPERM. */
			return -EPERM;
		}
		cpu_owner[cpus[i]] = -1;
	}
	return 0;
}

static int release_cpus(const int *cpus, int n)
{
	int i, err;

	for (i = 0; i < n; i++)
		if (cpu_owner[cpus[i]] != -1)
			return -EINVAL;
	for (i = 0; i < n; i++) {
		err = add_cpu(cpus[i]);
		if (err) {
			pr_info(DRV ": onlining cpu %d failed: %d\n", cpus[i], err);
			return -EPERM;
		}
		cpu_owner[cpus[i]] = -2;
	}
	return 0;
}

static int count_cpus(int owner)
{
	int c, n = 0;

	for (c = 0; c < MAX_CPUS; c++)
		if (cpu_owner[c] == owner)
			n++;
	return n;
}

/* -------------------------------------------------------------- memory -- */

static void chunk_free(struct chunk *ch)
{
	int i;

	for (i = 0; i < ch->npieces; i++)
		__free_pages(ch->pieces[i].page, ch->pieces[i].order);
	kfree(ch->pieces);
	list_del(&ch->list);
	kfree(ch);
}

static int chunk_push(struct chunk *ch, struct page *p, unsigned int order)
{
	if (ch->npieces == ch->cap) {
		int cap = ch->cap ? ch->cap * 2 : 16;
		struct piece *np = krealloc_array(ch->pieces, cap, sizeof(*np), GFP_KERNEL);

		if (!np)
			return -ENOMEM;
		ch->pieces = np;
		ch->cap = cap;
	}
	ch->pieces[ch->npieces].page = p;
	ch->pieces[ch->npieces].order = order;
	ch->npieces++;
	ch->bytes += PAGE_SIZE << order;
	return 0;
}

static struct chunk *chunk_new(int nid, int owner)
{
	struct chunk *ch = kzalloc(sizeof(*ch), GFP_KERNEL);

	if (!ch)
		return NULL;
	ch->nid = nid;
	ch->owner = owner;
	INIT_LIST_HEAD(&ch->list);
	return ch;
}

static unsigned long node_free_bytes(int nid)
{
	unsigned long pages = 0;
	int z;
	pg_data_t *pgdat = NODE_DATA(nid);

	for (z = 0; z < MAX_NR_ZONES; z++)
		pages += zone_page_state(&pgdat->node_zones[z], NR_FREE_PAGES);
	return pages << PAGE_SHIFT;
}

/*
 * reserve_one allocates want bytes on nid as IHK's SMP driver does: compound
 * pages with __GFP_THISNODE from the 4 MiB order down to min_order, lowering
 * the order on failure until the deadline. Physically adjacent pieces are
 * merged into one chunk. On failure nothing of this request stays allocated.
 */
static int reserve_one(int nid, size_t want, unsigned int min_order, unsigned long deadline,
		       struct list_head *out)
{
	const gfp_t gfp = GFP_KERNEL | __GFP_THISNODE | __GFP_NORETRY | __GFP_NOWARN | __GFP_COMP;
	const gfp_t gfp_movable = __GFP_MOVABLE | __GFP_HIGHMEM | __GFP_THISNODE | __GFP_NORETRY | __GFP_NOWARN |
				  __GFP_COMP;
	unsigned int order = get_order(MEM_GRANULE);
	struct chunk *cur = NULL, *ch, *tmp;
	unsigned long next_pfn = 0;
	size_t got = 0;
	LIST_HEAD(mine);

	while (got < want) {
		struct page *p;

		while (order > 0 && (PAGE_SIZE << order) > want - got)
			order--;
		p = alloc_pages_node(nid, gfp, order);
		if (!p && movable_fallback)
			p = alloc_pages_node(nid, gfp_movable, order);
		if (!p) {
			if (order > min_order && time_before(jiffies, deadline)) {
				order--;
				continue;
			}
			goto fail;
		}
		if (page_to_nid(p) != nid) {
			__free_pages(p, order);
			goto fail;
		}
		if (!cur || page_to_pfn(p) != next_pfn) {
			cur = chunk_new(nid, -1);
			if (!cur) {
				__free_pages(p, order);
				goto fail;
			}
			list_add_tail(&cur->list, &mine);
		}
		if (chunk_push(cur, p, order)) {
			__free_pages(p, order);
			goto fail;
		}
		next_pfn = page_to_pfn(p) + (1UL << order);
		got += PAGE_SIZE << order;
		cond_resched();
	}
	list_splice_tail(&mine, out);
	return 0;
fail:
	list_for_each_entry_safe(ch, tmp, &mine, list)
		chunk_free(ch);
	return -ENOMEM;
}

static int copy_mem_req(const struct mem_req *r, size_t **sizes, int **nids)
{
	*sizes = NULL;
	*nids = NULL;
	if (r->num_chunks <= 0 || r->num_chunks > 1024)
		return -EINVAL;
	*sizes = kmalloc_array(r->num_chunks, sizeof(size_t), GFP_KERNEL);
	*nids = kmalloc_array(r->num_chunks, sizeof(int), GFP_KERNEL);
	if (!*sizes || !*nids)
		goto nomem;
	if (copy_from_user(*sizes, r->sizes, r->num_chunks * sizeof(size_t)) ||
	    copy_from_user(*nids, r->numa_ids, r->num_chunks * sizeof(int))) {
		kfree(*sizes);
		kfree(*nids);
		return -EFAULT;
	}
	return 0;
nomem:
	kfree(*sizes);
	kfree(*nids);
	return -ENOMEM;
}

static bool valid_nid(int nid)
{
	return nid >= 0 && nid < MAX_NUMNODES && node_online(nid);
}

static int dev_reserve_mem(const struct mem_req *r)
{
	size_t *sizes;
	int *nids, i, err;
	unsigned int min_order;
	unsigned long deadline;

	err = copy_mem_req(r, &sizes, &nids);
	if (err)
		return err;
	err = -EINVAL;
	/* min_chunk_size 0 is refused: the driver's order limit would be meaningless. */
	if (r->min_chunk_size <= 0 || r->max_size_ratio_all < 0 || r->max_size_ratio_all > 98 || r->timeout < 0)
		goto out;
	for (i = 0; i < r->num_chunks; i++) {
		if (!valid_nid(nids[i]))
			goto out;
		if (sizes[i] != (size_t)-1 && (sizes[i] == 0 || sizes[i] % MEM_GRANULE))
			goto out;
	}
	min_order = get_order(max_t(size_t, r->min_chunk_size, PAGE_SIZE));
	if (min_order > get_order(MEM_GRANULE))
		min_order = get_order(MEM_GRANULE);
	deadline = jiffies + (unsigned long)r->timeout * HZ;
	/* Chunks in order; the first failure stops, earlier ones stay reserved. */
	for (i = 0; i < r->num_chunks; i++) {
		size_t want = sizes[i];

		if (want == (size_t)-1)
			want = rounddown(node_free_bytes(nids[i]) / 100 * r->max_size_ratio_all, MEM_GRANULE);
		err = reserve_one(nids[i], want, min_order, deadline, &chunks);
		if (err)
			goto out;
	}
	err = 0;
out:
	kfree(sizes);
	kfree(nids);
	return err;
}

/* Free (owner == -1) chunk exactly matching (bytes, nid), or NULL. */
static struct chunk *find_chunk(int owner, size_t bytes, int nid)
{
	struct chunk *ch;

	list_for_each_entry(ch, &chunks, list)
		if (ch->owner == owner && ch->bytes == bytes && ch->nid == nid)
			return ch;
	return NULL;
}

static int dev_release_mem(const struct mem_req *r)
{
	size_t *sizes;
	int *nids, i, err;

	err = copy_mem_req(r, &sizes, &nids);
	if (err)
		return err;
	for (i = 0; i < r->num_chunks; i++) {
		struct chunk *ch = find_chunk(-1, sizes[i], nids[i]);

		if (!ch) {
			err = -EINVAL;
			break;
		}
		chunk_free(ch);
	}
	kfree(sizes);
	kfree(nids);
	return err;
}

/*
 * query_mem answers QUERY_MEM for owner (-1: the device's free pool). With
 * num_chunks 0 it writes the count only. The device's query copies every
 * chunk without checking num_chunks, as IHK's does; the OS query refuses
 * arrays shorter than the count.
 */
static int query_mem(struct mem_req __user *ureq, int owner)
{
	struct mem_req r;
	struct chunk *ch;
	int n = 0, i = 0;

	if (copy_from_user(&r, ureq, sizeof(r)))
		return -EFAULT;
	list_for_each_entry(ch, &chunks, list)
		if (ch->owner == owner)
			n++;
	if (r.num_chunks == 0)
		return put_user(n, &ureq->num_chunks) ? -EFAULT : 0;
	if (owner >= 0 && r.num_chunks < n)
		return -EINVAL;
	list_for_each_entry(ch, &chunks, list) {
		if (ch->owner != owner)
			continue;
		if (put_user(ch->bytes, r.sizes + i) || put_user(ch->nid, r.numa_ids + i))
			return -EFAULT;
		i++;
	}
	return put_user(n, &ureq->num_chunks) ? -EFAULT : 0;
}

static unsigned long chunk_first_pfn(const struct chunk *ch)
{
	return page_to_pfn(ch->pieces[0].page);
}

static unsigned long chunk_end_pfn(const struct chunk *ch)
{
	const struct piece *last = &ch->pieces[ch->npieces - 1];

	return page_to_pfn(last->page) + (1UL << last->order);
}

/*
 * merge_free joins free chunks that are physically adjacent on one node, as
 * IHK merges its free list when chunks come back from an instance.
 */
static void merge_free(void)
{
	struct chunk *a, *b, *tmp;
	bool again = true;

	while (again) {
		again = false;
		list_for_each_entry(a, &chunks, list) {
			if (a->owner != -1 || !a->npieces)
				continue;
			list_for_each_entry_safe(b, tmp, &chunks, list) {
				int k;

				if (b == a || b->owner != -1 || b->nid != a->nid || !b->npieces ||
				    chunk_end_pfn(a) != chunk_first_pfn(b))
					continue;
				for (k = 0; k < b->npieces; k++)
					if (chunk_push(a, b->pieces[k].page, b->pieces[k].order))
						return; /* out of memory: stay unmerged */
				kfree(b->pieces);
				list_del(&b->list);
				kfree(b);
				again = true;
				break;
			}
			if (again)
				break;
		}
	}
}

/*
 * chunks_show writes the debugfs file ihk_testdrv/chunks: a header line, then
 * one line per chunk, "<node> <owner> <physical start> <bytes>" with the
 * start in hex and owner -1 for the device's free pool. A chunk's pieces are
 * physically contiguous (reserve_one, merge_free and assign_one keep them
 * so), so start and size describe it fully. Test-only: IHK has no such file.
 */
static int chunks_show(struct seq_file *m, void *v)
{
	struct chunk *ch;

	seq_puts(m, "node owner phys bytes\n");
	mutex_lock(&lock);
	list_for_each_entry(ch, &chunks, list) {
		if (!ch->npieces)
			continue;
		seq_printf(m, "%d %d 0x%llx %zu\n", ch->nid, ch->owner,
			   (unsigned long long)PFN_PHYS(chunk_first_pfn(ch)), ch->bytes);
	}
	mutex_unlock(&lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(chunks);

static struct dentry *debug_dir;

/*
 * assign_one assigns size bytes of nid's free chunks to the instance as IHK's
 * __smp_ihk_os_assign_mem does: repeatedly an exact-size chunk if there is
 * one, else the largest, split at a piece boundary when it is bigger than
 * what is left (never inside a compound page, so it may hand out more).
 */
static int assign_one(struct os *o, size_t size, int nid)
{
	size_t left = size;

	while (left) {
		struct chunk *ch, *pick = NULL, *part;
		size_t got = 0;
		int k;

		list_for_each_entry(ch, &chunks, list) {
			if (ch->owner != -1 || ch->nid != nid)
				continue;
			if (ch->bytes == left) {
				pick = ch;
				break;
			}
			if (!pick || ch->bytes > pick->bytes)
				pick = ch;
		}
		if (!pick)
			return -ENOMEM;
		if (pick->bytes <= left) {
			pick->owner = o->idx;
			pick->tag = assign_serial;
			left -= pick->bytes;
			continue;
		}
		part = chunk_new(nid, o->idx);
		if (!part)
			return -ENOMEM;
		part->tag = assign_serial;
		for (k = 0; k < pick->npieces && got < left; k++) {
			if (chunk_push(part, pick->pieces[k].page, pick->pieces[k].order)) {
				kfree(part->pieces);
				kfree(part);
				return -ENOMEM;
			}
			got += PAGE_SIZE << pick->pieces[k].order;
		}
		memmove(pick->pieces, pick->pieces + k, (pick->npieces - k) * sizeof(struct piece));
		pick->npieces -= k;
		pick->bytes -= got;
		list_add_tail(&part->list, &chunks);
		left = got >= left ? 0 : left - got;
	}
	return 0;
}

static int os_assign_mem(struct os *o, const struct mem_req *r)
{
	size_t *sizes;
	int *nids, i, err;
	struct chunk *ch;

	err = copy_mem_req(r, &sizes, &nids);
	if (err)
		return err;
	assign_serial++;
	for (i = 0; i < r->num_chunks && !err; i++) {
		if (!valid_nid(nids[i])) {
			err = -EINVAL;
			break;
		}
		if (sizes[i] == (size_t)-1) {
			list_for_each_entry(ch, &chunks, list) {
				if (ch->owner == -1 && ch->nid == nids[i]) {
					ch->owner = o->idx;
					ch->tag = assign_serial;
				}
			}
			continue;
		}
		err = assign_one(o, sizes[i], nids[i]);
	}
	if (err) { /* give back what this request assigned */
		list_for_each_entry(ch, &chunks, list)
			if (ch->owner == o->idx && ch->tag == assign_serial)
				ch->owner = -1;
		merge_free();
	}
	kfree(sizes);
	kfree(nids);
	return err;
}

static int os_release_mem(struct os *o, const struct mem_req *r)
{
	size_t *sizes;
	int *nids, i, err;

	err = copy_mem_req(r, &sizes, &nids);
	if (err)
		return err;
	for (i = 0; i < r->num_chunks; i++) {
		struct chunk *ch = find_chunk(o->idx, sizes[i], nids[i]);

		if (!ch) {
			err = -EINVAL;
			break;
		}
		ch->owner = -1;
	}
	merge_free();
	kfree(sizes);
	kfree(nids);
	return err;
}

/* ------------------------------------------------------------ instances -- */

static u64 running_ns(struct os *o)
{
	u64 ns = o->run_ns;

	if (o->run_since)
		ns += ktime_to_ns(ktime_sub(ktime_get(), o->run_since));
	return ns;
}

static void set_status(struct os *o, int st)
{
	if (o->status == ST_RUNNING && st != ST_RUNNING) {
		o->run_ns = running_ns(o);
		o->run_since = 0;
	}
	if (st == ST_RUNNING && o->status != ST_RUNNING)
		o->run_since = ktime_get();
	o->status = st;
}

static void run_work_fn(struct work_struct *w)
{
	struct os *o = container_of(to_delayed_work(w), struct os, run_work);

	mutex_lock(&lock);
	if (o->exists && o->status == ST_READY) {
		set_status(o, ST_RUNNING);
		kmsg_add(o, "testdrv: os %d running\n", o->idx);
	}
	mutex_unlock(&lock);
}

static bool booted(const struct os *o)
{
	switch (o->status) {
	case ST_READY:
	case ST_RUNNING:
	case ST_FREEZING:
	case ST_FROZEN:
	case ST_FAILED:
	case ST_HUNGUP:
		return true;
	}
	return false;
}

/*
 * Caller holds lock. Hands everything back to the device pool (host_driver.c
 * SHUTDOWN); DESTROY_OS runs it too. A pending READY->RUNNING transition is
 * cancelled here without waiting (its function takes lock and rechecks the
 * state, so one already running finds nothing to do); SHUTDOWN also waits
 * for it before taking lock, and module exit for every instance's.
 */
static void shutdown_locked(struct os *o)
{
	struct chunk *ch;
	int c;

	cancel_delayed_work(&o->run_work);

	for (c = 0; c < MAX_CPUS; c++)
		if (cpu_owner[c] == o->idx)
			cpu_owner[c] = -1;
	o->ncpus = 0;
	list_for_each_entry(ch, &chunks, list)
		if (ch->owner == o->idx)
			ch->owner = -1;
	merge_free();
	if (booting_os == o->idx)
		booting_os = -1;
	set_status(o, ST_NOT_BOOTED);
	o->run_ns = 0;
	o->loaded = false;
	o->hang_armed = false;
	o->kargs[0] = '\0';
	/* The LWK's ring is dropped: READ_KMSG fails until the next boot. */
	o->kmsg_len = 0;
}

static int dev_create_os(void)
{
	int i;
	struct device *d;

	for (i = 0; i < MAX_OS; i++)
		if (!oses[i].exists)
			break;
	if (i == MAX_OS)
		return -ENOMEM;
	oses[i].kmsg = vzalloc(KMSG_RING);
	if (!oses[i].kmsg)
		return -ENOMEM;
	d = device_create(mcos_class, NULL, MKDEV(MAJOR(mcos_dev), i), NULL, "mcos%d", i);
	if (IS_ERR(d)) {
		vfree(oses[i].kmsg);
		oses[i].kmsg = NULL;
		return PTR_ERR(d);
	}
	oses[i].exists = true;
	oses[i].status = ST_NOT_BOOTED;
	oses[i].ncpus = 0;
	oses[i].loaded = false;
	oses[i].kargs[0] = '\0';
	oses[i].kmsg_len = 0;
	oses[i].hang_armed = false;
	oses[i].run_ns = 0;
	oses[i].run_since = 0;
	return i;
}

static int dev_destroy_os(unsigned long idx)
{
	struct os *o;
	struct evt *e, *tmp;

	if (idx >= MAX_OS || !oses[idx].exists)
		return -EINVAL;
	o = &oses[idx];
	if (atomic_read(&o->opens) > 0 || o->status == ST_SHUTDOWN)
		return -EBUSY;
	shutdown_locked(o);
	vfree(o->kmsg);
	o->kmsg = NULL;
	list_for_each_entry_safe(e, tmp, &o->events, list) {
		eventfd_ctx_put(e->ctx);
		list_del(&e->list);
		kfree(e);
	}
	o->exists = false;
	device_destroy(mcos_class, MKDEV(MAJOR(mcos_dev), idx));
	return 0;
}

static int dev_detect_hungup(unsigned long idx)
{
	struct os *o;

	if (idx >= MAX_OS || !oses[idx].exists)
		return -EINVAL;
	o = &oses[idx];
	if (o->status == ST_HUNGUP)
		return ST_HUNGUP;
	if (o->status != ST_READY && o->status != ST_RUNNING)
		return -EAGAIN;
	if (o->hang_armed) {
		set_status(o, ST_HUNGUP);
		kmsg_add(o, "testdrv: os %d hung (injected)\n", o->idx);
		signal_events(o, EVT_STATUS);
		return ST_HUNGUP;
	}
	return o->status;
}

static long copy_buildid(void __user *arg)
{
	return copy_to_user(arg, BUILD_ID, sizeof(BUILD_ID)) ? -EFAULT : 0;
}

static long mcd_ioctl(struct file *f, unsigned int req, unsigned long arg)
{
	struct cpu_req cr;
	struct mem_req mr;
	int *cpus;
	long ret;

	mutex_lock(&lock);
	switch (req) {
	case IHK_DEVICE_CREATE_OS:
		ret = dev_create_os();
		break;
	case IHK_DEVICE_DESTROY_OS:
		ret = dev_destroy_os(arg);
		break;
	case IHK_DEVICE_RESERVE_CPU:
	case IHK_DEVICE_RELEASE_CPU:
		if (copy_from_user(&cr, (void __user *)arg, sizeof(cr))) {
			ret = -EFAULT;
			break;
		}
		ret = copy_cpus(&cr, &cpus);
		if (ret)
			break;
		if (req == IHK_DEVICE_RESERVE_CPU)
			ret = reserve_cpus(cpus, cr.num_cpus);
		else
			ret = release_cpus(cpus, cr.num_cpus);
		kfree(cpus);
		break;
	case IHK_DEVICE_QUERY_CPU: {
		int c, i = 0;

		if (copy_from_user(&cr, (void __user *)arg, sizeof(cr))) {
			ret = -EFAULT;
			break;
		}
		if (cr.num_cpus != count_cpus(-1)) {
			ret = -EINVAL;
			break;
		}
		ret = 0;
		for (c = 0; c < MAX_CPUS && !ret; c++)
			if (cpu_owner[c] == -1 && put_user(c, cr.cpus + i++))
				ret = -EFAULT;
		break;
	}
	case IHK_DEVICE_GET_NUM_CPUS:
		ret = count_cpus(-1);
		break;
	case IHK_DEVICE_RESERVE_MEM:
	case IHK_DEVICE_RELEASE_MEM:
		if (copy_from_user(&mr, (void __user *)arg, sizeof(mr))) {
			ret = -EFAULT;
			break;
		}
		ret = req == IHK_DEVICE_RESERVE_MEM ? dev_reserve_mem(&mr) : dev_release_mem(&mr);
		break;
	case IHK_DEVICE_QUERY_MEM:
		ret = query_mem((struct mem_req __user *)arg, -1);
		break;
	case IHK_DEVICE_GET_BUILDID:
		ret = copy_buildid((void __user *)arg);
		break;
	case IHK_DEVICE_DETECT_HUNGUP:
		ret = dev_detect_hungup(arg);
		break;
	default:
		ret = -EINVAL;
	}
	mutex_unlock(&lock);
	return ret;
}

/* Requests any user may make on /dev/mcosN; everything else is root only (host_driver.c). */
static bool os_req_any(unsigned int req)
{
	switch (req) {
	case IHK_OS_QUERY_STATUS:
	case IHK_OS_STATUS:
	case IHK_OS_READ_KMSG:
	case IHK_OS_CLEAR_KMSG:
	case IHK_OS_QUERY_CPU:
	case IHK_OS_QUERY_MEM:
	case IHK_OS_GET_USAGE:
	case IHK_OS_GET_CPU_USAGE:
	case IHK_OS_GET_NUM_NUMA_NODES:
	case IHK_OS_GET_BUILDID:
	case IHK_OS_GET_NUM_CPUS:
	case IHK_OS_GETRUSAGE: /* mcctrl's filter: perf requests root only, rusage any */
		return true;
	}
	return false;
}

static long os_status(struct os *o)
{
	/* IHK's x86 driver logs two lines per status query (smp-arch-driver.c). */
	pr_info(DRV ": builtin os status of os %d: %d\n", o->idx, o->status);
	pr_info(DRV ": status after checking monitor info: %d\n", o->status);
	return o->status;
}

static long os_cpu_req(struct os *o, unsigned int req, unsigned long arg)
{
	struct cpu_req cr;
	int *cpus, i, j;
	long ret;

	if (copy_from_user(&cr, (void __user *)arg, sizeof(cr)))
		return -EFAULT;
	if (req == IHK_OS_QUERY_CPU) {
		if (cr.num_cpus != o->ncpus)
			return -EINVAL;
		return copy_to_user(cr.cpus, o->cpus, o->ncpus * sizeof(int)) ? -EFAULT : 0;
	}
	if (o->status != ST_NOT_BOOTED)
		return -EBUSY;
	ret = copy_cpus(&cr, &cpus);
	if (ret)
		return ret;
	if (req == IHK_OS_ASSIGN_CPU) {
		for (i = 0; i < cr.num_cpus; i++) {
			if (cpu_owner[cpus[i]] != -1 || o->ncpus + cr.num_cpus > MAX_CPUS)
				ret = -EINVAL;
			for (j = 0; j < i; j++)
				if (cpus[j] == cpus[i])
					ret = -EINVAL;
		}
		for (i = 0; i < cr.num_cpus && !ret; i++) {
			cpu_owner[cpus[i]] = o->idx;
			o->ikc_dst[o->ncpus] = 0; /* assignment resets the IKC target to CPU 0 */
			o->cpus[o->ncpus++] = cpus[i];
		}
	} else {
		for (i = 0; i < cr.num_cpus; i++)
			if (cpu_owner[cpus[i]] != o->idx)
				ret = -EINVAL;
		for (i = 0; i < cr.num_cpus && !ret; i++) {
			cpu_owner[cpus[i]] = -1;
			for (j = 0; j < o->ncpus; j++) {
				if (o->cpus[j] != cpus[i])
					continue;
				memmove(o->cpus + j, o->cpus + j + 1, (o->ncpus - j - 1) * sizeof(int));
				memmove(o->ikc_dst + j, o->ikc_dst + j + 1, (o->ncpus - j - 1) * sizeof(int));
				o->ncpus--;
				break;
			}
		}
	}
	kfree(cpus);
	return ret;
}

static long os_ikc_map(struct os *o, unsigned int req, unsigned long arg)
{
	struct ikc_req r;
	int *src, *dst, i, j;
	long ret = 0;

	if (copy_from_user(&r, (void __user *)arg, sizeof(r)))
		return -EFAULT;
	if (req == IHK_OS_GET_IKC_MAP) {
		if (r.num_cpus != o->ncpus)
			return -EINVAL;
		if (copy_to_user(r.src_cpus, o->cpus, o->ncpus * sizeof(int)) ||
		    copy_to_user(r.dst_cpus, o->ikc_dst, o->ncpus * sizeof(int)))
			return -EFAULT;
		return 0;
	}
	if (o->status != ST_NOT_BOOTED)
		return -EBUSY;
	if (r.num_cpus <= 0 || r.num_cpus > MAX_CPUS)
		return -EINVAL;
	src = kmalloc_array(r.num_cpus, sizeof(int), GFP_KERNEL);
	dst = kmalloc_array(r.num_cpus, sizeof(int), GFP_KERNEL);
	if (!src || !dst) {
		ret = -ENOMEM;
		goto out;
	}
	if (copy_from_user(src, r.src_cpus, r.num_cpus * sizeof(int)) ||
	    copy_from_user(dst, r.dst_cpus, r.num_cpus * sizeof(int))) {
		ret = -EFAULT;
		goto out;
	}
	for (i = 0; i < r.num_cpus; i++) {
		if (src[i] < 0 || src[i] >= MAX_CPUS || cpu_owner[src[i]] != o->idx ||
		    dst[i] < 0 || dst[i] >= MAX_CPUS || dst[i] >= nr_cpu_ids ||
		    !cpu_present(dst[i]) || !cpu_online(dst[i]) || cpu_owner[dst[i]] != -2) {
			ret = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < r.num_cpus; i++)
		for (j = 0; j < o->ncpus; j++)
			if (o->cpus[j] == src[i])
				o->ikc_dst[j] = dst[i];
out:
	kfree(src);
	kfree(dst);
	return ret;
}

static long os_load(struct os *o, unsigned long arg)
{
	struct chunk *ch;
	struct file *img;
	char *path;
	bool mem = false;

	if (o->status != ST_NOT_BOOTED)
		return -EBUSY;
	list_for_each_entry(ch, &chunks, list)
		if (ch->owner == o->idx)
			mem = true;
	if (!o->ncpus || !mem)
		return -EINVAL;
	path = strndup_user((const char __user *)arg, 256);
	if (IS_ERR(path))
		return PTR_ERR(path);
	img = filp_open(path, O_RDONLY, 0);
	kfree(path);
	if (IS_ERR(img))
		return PTR_ERR(img);
	filp_close(img, NULL);
	o->loaded = true;
	return 0;
}

static long os_boot(struct os *o)
{
	if (!o->kmsg)
		return -EINVAL;
	if (booting_os >= 0)
		return -EBUSY;
	if (o->status != ST_NOT_BOOTED)
		return -EBUSY;
	if (!o->loaded || !o->ncpus)
		return -EINVAL;
	booting_os = o->idx;
	set_status(o, ST_BOOTING);
	kmsg_add(o, "testdrv: os %d booting on %d cpus, kargs \"%s\"\n", o->idx, o->ncpus, o->kargs);
	set_status(o, ST_READY);
	schedule_delayed_work(&o->run_work, msecs_to_jiffies(RUNNING_DELAY_MS));
	return 0;
}

static long os_rusage(struct os *o, unsigned long arg)
{
	struct getrusage_desc d;
	u8 *buf;
	u64 t, user_ns, sys_ns, rss;
	int i;
	long ret = 0;

	if (!booted(o))
		return -EINVAL; /* mcctrl's handler exists only while booted */
	if (copy_from_user(&d, (void __user *)arg, sizeof(d)))
		return -EFAULT;
	if (d.size_rusage > RUSAGE_SIZE)
		return -EINVAL;
	buf = kzalloc(RUSAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	/*
	 * Synthetic but consistent: every LWK CPU busy in user mode while
	 * RUNNING, 1% on top in system mode; 16 MiB of 4 KiB pages and 2 MiB
	 * of 2 MiB pages per CPU. Offsets from ihk_rusage.h.
	 */
	t = running_ns(o);
	user_ns = t * o->ncpus;
	sys_ns = user_ns / 100;
	rss = 16ULL << 20;
	*(u64 *)(buf + 0) = rss * o->ncpus; /* memory_stat_rss[4K] */
	*(u64 *)(buf + 16) = (2ULL << 20) * o->ncpus; /* memory_stat_rss[2M] */
	*(u64 *)(buf + 128) = (rss + (2ULL << 20)) * o->ncpus; /* memory_max_usage */
	*(u64 *)(buf + 136) = 1ULL << 20; /* memory_kmem_usage */
	*(u64 *)(buf + 144) = 1ULL << 20; /* memory_kmem_max_usage */
	*(u64 *)(buf + 152) = (rss + (2ULL << 20)) * o->ncpus; /* memory_numa_stat[0] */
	*(u64 *)(buf + 8344) = DIV_ROUND_UP_ULL(sys_ns, 10000000ULL); /* cpuacct_stat_system */
	*(u64 *)(buf + 8352) = DIV_ROUND_UP_ULL(user_ns, 10000000ULL); /* cpuacct_stat_user */
	*(u64 *)(buf + 8360) = user_ns; /* cpuacct_usage */
	for (i = 0; i < o->ncpus && i < 1024; i++)
		*(u64 *)(buf + 8368 + 8 * i) = t; /* cpuacct_usage_percpu */
	*(s32 *)(buf + 16560) = o->ncpus; /* num_threads */
	*(s32 *)(buf + 16564) = o->ncpus; /* max_num_threads */
	if (copy_to_user(d.rusage, buf, d.size_rusage))
		ret = -EFAULT;
	kfree(buf);
	return ret;
}

static long os_monitor(struct os *o, unsigned int req, unsigned long arg)
{
	int i, st;
	u64 counter;

	if (!booted(o))
		return -ENOSYS;
	if (req == IHK_OS_GET_USAGE) {
		/* Header: num_processors then reserve[128] (1032 bytes); only the count is set. */
		u64 n = o->ncpus;

		if (copy_to_user((void __user *)arg, &n, sizeof(n)) ||
		    clear_user((u8 __user *)arg + 8, 1024))
			return -EFAULT;
		return 0;
	}
	switch (o->status) {
	case ST_FROZEN:
	case ST_FREEZING:
		st = MON_FROZEN;
		break;
	case ST_FAILED:
		st = MON_PANIC;
		break;
	case ST_HUNGUP:
		st = MON_KERNEL;
		break;
	default:
		st = o->hang_armed ? MON_KERNEL : MON_USER;
	}
	counter = o->hang_armed ? 1 : running_ns(o) / 1000000;
	for (i = 0; i < o->ncpus; i++) {
		/* struct ihk_os_cpu_monitor: status, status_bak, counter, ocounter (24 bytes) */
		u8 __user *p = (u8 __user *)arg + 24 * i;
		s32 sts[2] = { st, st };
		u64 cnt[2] = { counter, counter };

		if (copy_to_user(p, sts, sizeof(sts)) || copy_to_user(p + 8, cnt, sizeof(cnt)))
			return -EFAULT;
	}
	return 0;
}

/*
 * os_perf models mcctrl's performance-counter requests on a machine where
 * no counter can be programmed (as McKernel on a VM): SET registers none,
 * GET of more counters than registered fails. Root only, booted only.
 */
static long os_perf(struct os *o, unsigned int req, unsigned long arg)
{
	if (!booted(o))
		return -EINVAL; /* mcctrl's handlers exist only while booted */
	switch (req) {
	case IHK_OS_AUX_PERF_NUM:
		o->perf_num = (int)arg;
		return 0;
	case IHK_OS_AUX_PERF_SET:
		o->perf_num = 0; /* events registered on every LWK CPU */
		return 0;
	case IHK_OS_AUX_PERF_GET:
		return o->perf_num == 0 ? -EINVAL : 0;
	case IHK_OS_AUX_PERF_DESTROY:
		o->perf_num = 0;
		return 0;
	}
	return 0;
}

static int numa_nodes(struct os *o)
{
	nodemask_t m = NODE_MASK_NONE;
	struct chunk *ch;
	int i;

	for (i = 0; i < o->ncpus; i++)
		node_set(cpu_to_node(o->cpus[i]), m);
	list_for_each_entry(ch, &chunks, list)
		if (ch->owner == o->idx)
			node_set(ch->nid, m);
	return nodes_weight(m);
}

static long mcos_ioctl(struct file *f, unsigned int req, unsigned long arg)
{
	struct os *o = f->private_data;
	struct mem_req mr;
	struct eventfd_desc ed;
	long ret;

	if (!os_req_any(req) && !is_root())
		return -EPERM;
	if (req == IHK_OS_SHUTDOWN)
		cancel_delayed_work_sync(&o->run_work);
	mutex_lock(&lock);
	if (!o->exists) {
		ret = -ENOENT;
		goto out;
	}
	switch (req) {
	case IHK_OS_LOAD:
		ret = os_load(o, arg);
		break;
	case IHK_OS_BOOT:
		ret = os_boot(o);
		break;
	case IHK_OS_SHUTDOWN:
		ret = 0;
		if (o->status == ST_SHUTDOWN)
			ret = -EBUSY;
		else if (o->status != ST_NOT_BOOTED)
			shutdown_locked(o);
		break;
	case IHK_OS_QUERY_STATUS:
	case IHK_OS_STATUS:
		ret = os_status(o);
		break;
	case IHK_OS_SET_KARGS: {
		char *s;

		if (o->status != ST_NOT_BOOTED) {
			ret = -EBUSY;
			break;
		}
		s = strndup_user((const char __user *)arg, 1024);
		if (IS_ERR(s)) {
			ret = PTR_ERR(s);
			break;
		}
		strscpy(o->kargs, s, KARGS_LEN); /* the driver keeps 255 characters */
		kfree(s);
		ret = 0;
		break;
	}
	case IHK_OS_REGISTER_EVENT: {
		struct evt *e;
		struct eventfd_ctx *ctx;

		if (copy_from_user(&ed, (void __user *)arg, sizeof(ed))) {
			ret = -EFAULT;
			break;
		}
		ctx = eventfd_ctx_fdget(ed.fd);
		if (IS_ERR(ctx)) {
			ret = PTR_ERR(ctx);
			break;
		}
		e = kzalloc(sizeof(*e), GFP_KERNEL);
		if (!e) {
			eventfd_ctx_put(ctx);
			ret = -ENOMEM;
			break;
		}
		e->type = ed.type;
		e->ctx = ctx;
		list_add_tail(&e->list, &o->events);
		ret = 0;
		break;
	}
	case IHK_OS_EVENTFD:
		signal_events(o, (int)arg);
		ret = 0;
		break;
	case IHK_OS_READ_KMSG:
		if (!booted(o) || !o->kmsg) {
			ret = -EINVAL;
			break;
		}
		ret = copy_to_user((void __user *)arg, o->kmsg, o->kmsg_len) ? -EFAULT : (long)o->kmsg_len;
		break;
	case IHK_OS_CLEAR_KMSG:
		o->kmsg_len = 0;
		ret = 0;
		break;
	case IHK_OS_ASSIGN_CPU:
	case IHK_OS_RELEASE_CPU:
	case IHK_OS_QUERY_CPU:
		ret = os_cpu_req(o, req, arg);
		break;
	case IHK_OS_ASSIGN_MEM:
	case IHK_OS_RELEASE_MEM:
		if (o->status != ST_NOT_BOOTED) {
			ret = -EBUSY;
			break;
		}
		if (copy_from_user(&mr, (void __user *)arg, sizeof(mr))) {
			ret = -EFAULT;
			break;
		}
		ret = req == IHK_OS_ASSIGN_MEM ? os_assign_mem(o, &mr) : os_release_mem(o, &mr);
		break;
	case IHK_OS_QUERY_MEM:
		ret = query_mem((struct mem_req __user *)arg, o->idx);
		break;
	case IHK_OS_SET_IKC_MAP:
	case IHK_OS_GET_IKC_MAP:
		ret = os_ikc_map(o, req, arg);
		break;
	case IHK_OS_FREEZE:
		if (o->status == ST_FREEZING || o->status == ST_FROZEN)
			ret = -EBUSY;
		else if (o->status != ST_RUNNING)
			ret = -EINVAL;
		else {
			set_status(o, ST_FROZEN);
			ret = 0;
		}
		break;
	case IHK_OS_THAW:
		if (o->status != ST_FREEZING && o->status != ST_FROZEN)
			ret = -EINVAL;
		else {
			set_status(o, ST_RUNNING);
			ret = 0;
		}
		break;
	case IHK_OS_GET_USAGE:
	case IHK_OS_GET_CPU_USAGE:
		ret = os_monitor(o, req, arg);
		break;
	case IHK_OS_GET_NUM_NUMA_NODES:
		ret = numa_nodes(o);
		break;
	case IHK_OS_NOTIFY_HUNGUP:
		set_status(o, ST_HUNGUP);
		signal_events(o, EVT_STATUS);
		ret = 0;
		break;
	case IHK_OS_GET_BUILDID:
		ret = copy_buildid((void __user *)arg);
		break;
	case IHK_OS_GET_NUM_CPUS:
		ret = o->ncpus;
		break;
	case IHK_OS_GETRUSAGE:
		ret = os_rusage(o, arg);
		break;
	case IHK_OS_AUX_PERF_NUM:
	case IHK_OS_AUX_PERF_SET:
	case IHK_OS_AUX_PERF_GET:
	case IHK_OS_AUX_PERF_ENABLE:
	case IHK_OS_AUX_PERF_DISABLE:
	case IHK_OS_AUX_PERF_DESTROY:
		ret = os_perf(o, req, arg);
		break;
	case TESTDRV_INJECT_PANIC:
		if (o->status != ST_READY && o->status != ST_RUNNING) {
			ret = -EINVAL;
			break;
		}
		set_status(o, ST_FAILED);
		kmsg_add(o, "testdrv: os %d: kernel panic (injected)\n", o->idx);
		signal_events(o, EVT_STATUS);
		ret = 0;
		break;
	case TESTDRV_INJECT_HANG:
		if (o->status != ST_READY && o->status != ST_RUNNING) {
			ret = -EINVAL;
			break;
		}
		o->hang_armed = true;
		ret = 0;
		break;
	case TESTDRV_INJECT_OOM:
		if (!booted(o)) {
			ret = -EINVAL;
			break;
		}
		kmsg_add(o, "testdrv: os %d: out of memory (injected)\n", o->idx);
		signal_events(o, EVT_OOM);
		ret = 0;
		break;
	default:
		ret = -EINVAL;
	}
out:
	mutex_unlock(&lock);
	return ret;
}

static int mcos_open(struct inode *inode, struct file *f)
{
	unsigned int minor = iminor(inode);
	struct os *o;

	if (minor >= MAX_OS)
		return -EINVAL;
	o = &oses[minor];
	mutex_lock(&lock);
	if (!o->exists) {
		mutex_unlock(&lock);
		return -ENOENT;
	}
	atomic_inc(&o->opens);
	mutex_unlock(&lock);
	f->private_data = o;
	return 0;
}

static int mcos_release(struct inode *inode, struct file *f)
{
	struct os *o = f->private_data;

	atomic_dec(&o->opens);
	return 0;
}

static const struct file_operations mcd_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = mcd_ioctl,
};

static const struct file_operations mcos_fops = {
	.owner = THIS_MODULE,
	.open = mcos_open,
	.release = mcos_release,
	.unlocked_ioctl = mcos_ioctl,
};

static void teardown_all(void)
{
	struct chunk *ch, *tmp;
	int i, c;

	for (i = 0; i < MAX_OS; i++)
		cancel_delayed_work_sync(&oses[i].run_work);
	mutex_lock(&lock);
	for (i = 0; i < MAX_OS; i++) {
		if (!oses[i].exists)
			continue;
		atomic_set(&oses[i].opens, 0);
		dev_destroy_os(i);
	}
	list_for_each_entry_safe(ch, tmp, &chunks, list)
		chunk_free(ch);
	for (c = 0; c < MAX_CPUS; c++)
		if (cpu_owner[c] == -1 && add_cpu(c) == 0)
			cpu_owner[c] = -2;
	mutex_unlock(&lock);
}

static int __init testdrv_init(void)
{
	int err, i;

	for (i = 0; i < MAX_CPUS; i++)
		cpu_owner[i] = -2;
	for (i = 0; i < MAX_OS; i++) {
		oses[i].idx = i;
		INIT_LIST_HEAD(&oses[i].events);
		INIT_DELAYED_WORK(&oses[i].run_work, run_work_fn);
	}
	err = alloc_chrdev_region(&mcd_dev, 0, 1, "mcd");
	if (err)
		return err;
	err = alloc_chrdev_region(&mcos_dev, 0, MAX_OS, "mcos");
	if (err)
		goto out_mcd_region;
	mcd_class = testdrv_class_create("mcd");
	if (IS_ERR(mcd_class)) {
		err = PTR_ERR(mcd_class);
		goto out_mcos_region;
	}
	mcos_class = testdrv_class_create("mcos");
	if (IS_ERR(mcos_class)) {
		err = PTR_ERR(mcos_class);
		goto out_mcd_class;
	}
	cdev_init(&mcd_cdev, &mcd_fops);
	err = cdev_add(&mcd_cdev, mcd_dev, 1);
	if (err)
		goto out_mcos_class;
	cdev_init(&mcos_cdev, &mcos_fops);
	err = cdev_add(&mcos_cdev, mcos_dev, MAX_OS);
	if (err)
		goto out_mcd_cdev;
	if (IS_ERR(device_create(mcd_class, NULL, mcd_dev, NULL, "mcd0"))) {
		err = -ENODEV;
		goto out_mcos_cdev;
	}
	/* debugfs is optional: without it only the test-only chunk list is missing. */
	debug_dir = debugfs_create_dir(DRV, NULL);
	debugfs_create_file("chunks", 0400, debug_dir, NULL, &chunks_fops);
	pr_info(DRV ": loaded (a test double of IHK's device interface; build id %s)\n", BUILD_ID);
	return 0;

out_mcos_cdev:
	cdev_del(&mcos_cdev);
out_mcd_cdev:
	cdev_del(&mcd_cdev);
out_mcos_class:
	class_destroy(mcos_class);
out_mcd_class:
	class_destroy(mcd_class);
out_mcos_region:
	unregister_chrdev_region(mcos_dev, MAX_OS);
out_mcd_region:
	unregister_chrdev_region(mcd_dev, 1);
	return err;
}

static void __exit testdrv_exit(void)
{
	debugfs_remove_recursive(debug_dir);
	device_destroy(mcd_class, mcd_dev);
	cdev_del(&mcos_cdev);
	cdev_del(&mcd_cdev);
	teardown_all();
	class_destroy(mcos_class);
	class_destroy(mcd_class);
	unregister_chrdev_region(mcos_dev, MAX_OS);
	unregister_chrdev_region(mcd_dev, 1);
}

module_init(testdrv_init);
module_exit(testdrv_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Test double of IHK's device interface for slurm-lwk's VM tests; never for production");
