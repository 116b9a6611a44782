package main

import "k8s.io/utils/cpuset"

// The synthetic machines. Each one's README.md gives the sources; the
// comments here say which fact drives which line.

func machines() []machine {
	return []machine{paperE5520Fake12(), a64fxFugaku(), xeon2sHT(), epycNPS4(), offlineCPUs(), big1024()}
}

const (
	kiB = 1024
	miB = 1024 * kiB
	giB = 1024 * miB
)

// paperE5520Fake12 is the paper's evaluation node (§6.1): 2x Xeon E5520
// (Nehalem-EP, 4 cores, 2 threads), 16 logical CPUs, 12 GB, booted with
// numa=fake=12.
func paperE5520Fake12() machine {
	m := machine{
		name:          "paper-e5520-fake12",
		possibleCPUs:  "0-15",
		kernelMax:     8191,
		smtControl:    "on",
		possibleNodes: "0-11",
		// Nodes 0, 2 and 4 lie below 4 GiB (ZONE_DMA/DMA32 only).
		hasNormal: "1,3,5-11",
		blockSize: 128 * miB,
	}
	// Enumeration as in the paper's figure 9: sockets alternate (even CPUs
	// on socket 0, odd on socket 1), HT siblings are +8.
	for id := 0; id < 16; id++ {
		first := id % 8
		m.cpus = append(m.cpus, cpu{
			id: id, pkg: first % 2, coreID: first / 2,
			siblings: []int{first, first + 8},
			// cpu_to_node: numa_emulation() maps each APIC ID to the first
			// emulated node of its physical node: 0 or 1.
			node: first % 2, online: true, noHotplug: id == 0,
		})
	}
	socket0 := cpuset.New(0, 2, 4, 6, 8, 10, 12, 14)
	socket1 := cpuset.New(1, 3, 5, 7, 9, 11, 13, 15)
	// split_nodes_interleave() deals the 12 emulated nodes round-robin over
	// the 2 physical nodes: even IDs on socket 0, odd on socket 1. Emulated
	// node cpulists (numa_add_cpu) hold every CPU of their physical node.
	// Distances are the physical ones: 10 on the same socket, 21 across.
	free := []uint64{186532, 402116, 1019340, 1021876, 1022904, 1018232, 1023488, 1020964, 1022140, 1019856, 1023012, 1021420}
	for id := 0; id < 12; id++ {
		n := node{id: id, totalKB: 1032192, freeKB: free[id]}
		if id%2 == 0 {
			n.cpus = &socket0
		} else {
			n.cpus = &socket1
		}
		if id == 0 {
			n.totalKB = 998604 // kernel image, low-memory reservations
		}
		if id == 1 {
			n.totalKB = 1031484
		}
		for j := 0; j < 12; j++ {
			switch {
			case j == id || j%2 == id%2:
				n.distance = append(n.distance, 10)
			default:
				n.distance = append(n.distance, 21)
			}
		}
		m.nodes = append(m.nodes, n)
	}
	// Physical map: RAM 0-3 GiB and 4-13 GiB (PCI hole 3-4 GiB). Socket 0
	// has 0-3 and 4-7 GiB, socket 1 7-13 GiB. Emulated nodes of 1 GiB
	// (node 4 extends to the DMA32 end at 4 GiB, which holds no RAM):
	// node 0 [0,1) 2 [1,2) 4 [2,3) 6 [4,5) 8 [5,6) 10 [6,7) GiB,
	// node 1 [7,8) 3 [8,9) 5 [9,10) 7 [10,11) 9 [11,12) 11 [12,13) GiB.
	start := map[int]int{0: 0, 2: 1, 4: 2, 6: 4, 8: 5, 10: 6, 1: 7, 3: 8, 5: 9, 7: 10, 9: 11, 11: 12}
	for nid, gib := range start {
		for i := 0; i < 8; i++ {
			idx := gib*8 + i
			zone := "Normal"
			switch {
			case idx == 0:
				zone = "none" // spans ZONE_DMA and ZONE_DMA32
			case gib < 4:
				zone = "DMA32"
			}
			m.blocks = append(m.blocks, block{index: idx, nodes: []int{nid}, state: "online", zones: zone, removable: true})
		}
	}
	sortBlocks(m.blocks)
	return m
}

// a64fxFugaku is a Fugaku compute node: A64FX with 48 compute cores in 4
// CMGs plus 2 assistant cores, 32 GiB HBM2 (8 GiB per CMG), no SMT.
func a64fxFugaku() machine {
	m := machine{
		name:          "a64fx-fugaku",
		possibleCPUs:  "0-59",
		kernelMax:     4095,
		possibleNodes: "0-7",
		hasNormal:     "0-7",
	}
	// Assistant cores: CPUs 0 and 1, packages 0 and 1, NUMA nodes 0 and 1.
	for id := 0; id < 2; id++ {
		m.cpus = append(m.cpus, cpu{id: id, pkg: id, coreID: 0, siblings: []int{id}, node: id, online: true, noHotplug: id == 0})
	}
	// Compute cores: CPUs 12-59, CMG k = CPUs 12+12k..23+12k with
	// physical_package_id 4+k, in NUMA node 4+k. CPU IDs 2-11 are possible
	// but not present.
	for id := 12; id < 60; id++ {
		k := (id - 12) / 12
		m.cpus = append(m.cpus, cpu{id: id, pkg: 4 + k, coreID: (id - 12) % 12, siblings: []int{id}, node: 4 + k, online: true})
	}
	// Memory: of each CMG's 8 GiB HBM2, about 1 GiB forms a system node
	// (0-3) and 7 GiB a job node (4-7): 28 GiB for jobs.
	sysFree := []uint64{310412, 402876, 688204, 701332}
	jobFree := []uint64{7124588, 7130112, 7128876, 7131240}
	cmgDist := func(a, b int) int {
		switch {
		case a == b:
			return 11
		case a/2 == b/2:
			return 20
		}
		return 30
	}
	for id := 0; id < 8; id++ {
		n := node{id: id}
		if id < 4 {
			n.totalKB, n.freeKB = 989184, sysFree[id]
		} else {
			n.totalKB, n.freeKB = 7245824, jobFree[id-4]
		}
		for j := 0; j < 8; j++ {
			if j == id {
				n.distance = append(n.distance, 10)
			} else {
				n.distance = append(n.distance, cmgDist(id%4, j%4))
			}
		}
		m.nodes = append(m.nodes, n)
	}
	return m
}

// xeon2sHT is a 2-socket Cascade Lake (2x Xeon Gold 6226R: 16 cores, 2
// threads), 64 logical CPUs, 2 NUMA nodes, 192 GiB.
func xeon2sHT() machine {
	m := machine{
		name:          "xeon-2s-ht",
		possibleCPUs:  "0-63",
		kernelMax:     8191,
		smtControl:    "on",
		possibleNodes: "0-1",
		hasNormal:     "0-1",
		blockSize:     2 * giB,
	}
	// core_id follows the die's tile positions and is sparse; the fused-off
	// tiles differ per chip.
	coreIDs := [2][]int{
		{0, 1, 2, 3, 4, 8, 9, 10, 11, 16, 17, 18, 19, 20, 24, 25},
		{0, 1, 2, 4, 5, 8, 9, 11, 12, 16, 17, 18, 20, 24, 25, 26},
	}
	// Enumeration: thread 0 of socket 0 (0-15), of socket 1 (16-31), then
	// the siblings in the same order (32-63).
	for id := 0; id < 64; id++ {
		first := id % 32
		s := first / 16
		m.cpus = append(m.cpus, cpu{
			id: id, pkg: s, coreID: coreIDs[s][first%16], siblings: []int{first, first + 32},
			node: s, online: true, noHotplug: id == 0,
		})
	}
	m.nodes = []node{
		{id: 0, totalKB: 98721644, freeKB: 81237408, distance: []int{10, 21}},
		{id: 1, totalKB: 99032820, freeKB: 90614252, distance: []int{21, 10}},
	}
	// 2 GiB blocks (x86 uses them from 64 GiB of RAM). RAM 0-2 GiB and
	// 4-194 GiB; node 0 up to 98 GiB.
	m.blocks = append(m.blocks, block{index: 0, nodes: []int{0}, state: "online", zones: "none", removable: true})
	for idx := 2; idx <= 96; idx++ {
		nid := 0
		if idx >= 49 {
			nid = 1
		}
		m.blocks = append(m.blocks, block{index: idx, nodes: []int{nid}, state: "online", zones: "Normal", removable: true})
	}
	return m
}

// epycNPS4 is a 1-socket AMD EPYC 7763 (Milan, 64 cores, 2 threads) in
// NPS4: 4 NUMA nodes of 16 cores, 256 GiB.
func epycNPS4() machine {
	m := machine{
		name:          "epyc-nps4",
		possibleCPUs:  "0-127",
		kernelMax:     8191,
		smtControl:    "on",
		possibleNodes: "0-3",
		hasNormal:     "0-3",
		blockSize:     2 * giB,
	}
	for id := 0; id < 128; id++ {
		first := id % 64
		m.cpus = append(m.cpus, cpu{
			id: id, pkg: 0, coreID: first, siblings: []int{first, first + 64},
			node: first / 16, online: true, noHotplug: id == 0,
		})
	}
	// SLIT of a 1-socket NPS4 part: 10 local, 11 for the neighbouring
	// quadrant on the same side of the I/O die, 12 for the other two.
	dist := [4][]int{{10, 11, 12, 12}, {11, 10, 12, 12}, {12, 12, 10, 11}, {12, 12, 11, 10}}
	total := []uint64{65471532, 66049188, 66049188, 66031200}
	free := []uint64{58112344, 63871020, 64010876, 63922104}
	for id := 0; id < 4; id++ {
		m.nodes = append(m.nodes, node{id: id, totalKB: total[id], freeKB: free[id], distance: dist[id]})
	}
	// RAM 0-2 GiB and 4-258 GiB, 64 GiB per node: node 0 [0,2)+[4,66),
	// node 1 [66,130), node 2 [130,194), node 3 [194,258) GiB.
	m.blocks = append(m.blocks, block{index: 0, nodes: []int{0}, state: "online", zones: "none", removable: true})
	for idx := 2; idx <= 128; idx++ {
		nid := (idx*2 - 2) / 64
		m.blocks = append(m.blocks, block{index: idx, nodes: []int{nid}, state: "online", zones: "Normal", removable: true})
	}
	return m
}

// offlineCPUs is an 8-core, 2-thread single-socket machine (Xeon E-2288G
// class) booted with nosmt, so the siblings 8-15 are offline, and with
// CPU 5 taken offline by hand (echo 0 > cpu5/online). It has no memory/
// directory (kernel built without memory hotplug).
func offlineCPUs() machine {
	m := machine{
		name:          "offline-cpus",
		possibleCPUs:  "0-15",
		kernelMax:     8191,
		smtControl:    "off",
		possibleNodes: "0",
		hasNormal:     "0",
	}
	for id := 0; id < 16; id++ {
		first := id % 8
		m.cpus = append(m.cpus, cpu{
			id: id, pkg: 0, coreID: first, siblings: []int{first, first + 8},
			node: 0, online: id < 8 && id != 5, noHotplug: id == 0,
		})
	}
	m.nodes = []node{{id: 0, totalKB: 32607896, freeKB: 29874120, distance: []int{10}}}
	return m
}

// big1024 is a 1024-CPU node for the lifecycle benchmark (make bench),
// generated on request into a temporary directory and never committed: 4
// sockets of 128 cores with 2 threads (EPYC 9754 class), 8 NUMA nodes per
// socket (NPS4-like with sub-NUMA clustering) of 16 cores and 32 GiB each.
// Linux numbering as on EPYC: thread 0 of every core first (0-511), the
// siblings +512. No memory/ directory: planning does not read it.
func big1024() machine {
	const sockets, coresPerSocket, nodes = 4, 128, 32
	const cores = sockets * coresPerSocket
	const coresPerNode = cores / nodes
	m := machine{
		name:          "big-1024",
		onRequest:     true,
		possibleCPUs:  "0-1023",
		kernelMax:     8191,
		smtControl:    "on",
		possibleNodes: "0-31",
		hasNormal:     "0-31",
	}
	for id := 0; id < 2*cores; id++ {
		first := id % cores
		m.cpus = append(m.cpus, cpu{
			id: id, pkg: first / coresPerSocket, coreID: first % coresPerSocket,
			siblings: []int{first, first + cores}, node: first / coresPerNode,
			online: true, noHotplug: id == 0,
		})
	}
	perSocket := nodes / sockets
	for id := 0; id < nodes; id++ {
		n := node{id: id, totalKB: 32 * giB / kiB, freeKB: 30 * giB / kiB}
		for o := 0; o < nodes; o++ {
			switch {
			case o == id:
				n.distance = append(n.distance, 10)
			case o/perSocket == id/perSocket:
				n.distance = append(n.distance, 12)
			default:
				n.distance = append(n.distance, 32)
			}
		}
		m.nodes = append(m.nodes, n)
	}
	return m
}

func sortBlocks(b []block) {
	for i := 1; i < len(b); i++ {
		for j := i; j > 0 && b[j].index < b[j-1].index; j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}
